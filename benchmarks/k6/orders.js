// The load runner's scenario in k6, the seed's own load tool: setup reads every user from GET /api/users (paged),
// then each iteration posts one order for a random user, as `flashsale load --target http` does.
//   MODEL=open RATE=150  : constant-arrival-rate (the runner's open model)
//   MODEL=closed VUS=1    : constant-vus with no pause (the runner's closed model, --think-ms 0)
// BASE_URL, FLASH_SALE_ID, DURATION (e.g. 10s) and SUMMARY (where handleSummary writes its JSON) are required.
import { check } from 'k6';
import http from 'k6/http';

const BASE_URL = __ENV.BASE_URL;
const MODEL = __ENV.MODEL || 'open';
const DURATION = __ENV.DURATION || '10s';

const scenario = MODEL === 'open'
  ? {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 150),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Number(__ENV.PREALLOCATED || 50),
      maxVUs: Number(__ENV.MAX_VUS || 1000),
    }
  : { executor: 'constant-vus', vus: Number(__ENV.VUS || 1), duration: DURATION };

export const options = {
  scenarios: { orders: scenario },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  discardResponseBodies: true,
};

export function setup() {
  const users = [];
  for (;;) {
    const page = http.get(`${BASE_URL}/api/users?limit=1000&offset=${users.length}`, { responseType: 'text' }).json();
    users.push(...page.user_ids);
    if (page.user_ids.length === 0 || users.length >= page.total) break;
  }
  const sale = __ENV.FLASH_SALE_ID;
  return { bodies: users.map((u) => JSON.stringify({ user_id: u, flash_sale_id: sale, quantity: 1 })) };
}

const params = { headers: { 'Content-Type': 'application/json' } };

export default function (data) {
  const res = http.post(`${BASE_URL}/api/orders`, data.bodies[Math.floor(Math.random() * data.bodies.length)], params);
  check(res, { 'placed or sold out (201/409)': (r) => r.status === 201 || r.status === 409 });
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}
