// The seed's load test in k6, its own tool: the setup reads every user from GET /users (one JSON array), then each
// virtual user posts an order for a random user to POST /api/orders and pauses THINK_S seconds (the seed's 0.1).
// `flashsale.load.k6.seed_scenario` runs it with --vus and --duration; BASE_URL and FLASH_SALE_ID are required.
// Only the orders are tagged `order`: the figures of `http_req_duration{name:order}` leave the setup's GET out.
import { check, sleep } from "k6";
import http from "k6/http";

const BASE_URL = __ENV.BASE_URL;
const FLASH_SALE_ID = __ENV.FLASH_SALE_ID;
const THINK_S = Number(__ENV.THINK_S || 0.1);

export const options = {
  // a threshold that always holds makes k6 report the orders' own figures (a submetric)
  thresholds: { "http_req_duration{name:order}": ["max>=0"], "http_reqs{name:order}": ["count>=0"] },
  summaryTrendStats: ["avg", "min", "med", "p(90)", "p(95)", "p(99)", "max", "count"],
  discardResponseBodies: true,
};

export function setup() {
  const users = http.get(`${BASE_URL}/users`, { responseType: "text" }).json();
  return { bodies: users.map((u) => JSON.stringify({ user_id: u.id, flash_sale_id: FLASH_SALE_ID, quantity: 1 })) };
}

const params = { headers: { "Content-Type": "application/json" }, tags: { name: "order" } };

export default function (data) {
  const res = http.post(`${BASE_URL}/api/orders`, data.bodies[Math.floor(Math.random() * data.bodies.length)], params);
  check(res, { "order placed (201)": (r) => r.status === 201 });
  sleep(THINK_S);
}
