// A k6 script in the shape of the original's (FlashDeal's scripts/load_test.js): the setup reads the real users
// from GET /users (a JSON array), each iteration posts an order for a random one to POST /orders and checks the
// answer. Only BASE_URL and FLASH_SALE_ID need setting; RETRY_RATE (0 to 1) sends every order with an
// Idempotency-Key and, on that share of the iterations, resends one of this VU's last RETRY_POOL keys with the
// body it was first sent with (the original's phase 5). THINK_S is the pause after each order (the original's 0.1);
// THINK_JITTER (0 to 1) draws each pause uniformly within THINK_S * (1 -/+ THINK_JITTER), as the runner's
// --think-jitter does.
import http from "k6/http";
import { check, sleep } from "k6";

export const options = {
  vus: 10,
  duration: "30s",
  thresholds: { checks: ["rate==1"] }, // any failed check fails the run (k6 exits non-zero)
};

const BASE_URL = __ENV.BASE_URL || "http://localhost:8000";
const FLASH_SALE_ID = __ENV.FLASH_SALE_ID;
const RETRY_RATE = Number(__ENV.RETRY_RATE || 0);
const RETRY_POOL = Number(__ENV.RETRY_POOL || 50);
const THINK_S = Number(__ENV.THINK_S || 0.1);
const THINK_JITTER = Number(__ENV.THINK_JITTER || 0);
const KEYED = __ENV.RETRY_RATE !== undefined;

const sent = []; // this VU's recent [key, body] pairs

export function setup() {
  const res = http.get(`${BASE_URL}/users`);
  check(res, { "users listed": (r) => r.status === 200 && Array.isArray(r.json()) });
  return { userIds: res.json().map((user) => user.id) };
}

function nextOrder(userIds) {
  if (KEYED && sent.length > 0 && Math.random() < RETRY_RATE) {
    return sent[Math.floor(Math.random() * sent.length)];
  }
  const body = JSON.stringify({
    user_id: userIds[Math.floor(Math.random() * userIds.length)],
    flash_sale_id: FLASH_SALE_ID,
    quantity: 1,
  });
  const key = KEYED ? `k6-${__VU}-${__ITER}` : null;
  if (KEYED) {
    sent.push([key, body]);
    if (sent.length > RETRY_POOL) sent.shift();
  }
  return [key, body];
}

export default function (data) {
  const [key, body] = nextOrder(data.userIds);
  const headers = { "Content-Type": "application/json" };
  if (key !== null) headers["Idempotency-Key"] = key;
  const res = http.post(`${BASE_URL}/orders`, body, { headers: headers });
  check(res, {
    "is status 201 or 409 or 404": (r) => [201, 409, 404].includes(r.status),
    "a created order is CONFIRMED, with its order_id": (r) =>
      r.status !== 201 || (r.json("status") === "CONFIRMED" && typeof r.json("order_id") === "string"),
    "a refusal says why": (r) => r.status === 201 || typeof r.json("error") === "string",
  });
  sleep(THINK_S * (1 - THINK_JITTER + 2 * THINK_JITTER * Math.random()));
}
