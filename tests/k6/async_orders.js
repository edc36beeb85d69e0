// A k6 script in the shape of the original's phase 4 (asynchronous orders): the setup reads the users from
// GET /users, each iteration posts an order to POST /orders, expects 202 with a status URL, and polls that URL
// every POLL_S seconds (the original's 1 s) until the order is completed or failed. Only BASE_URL and
// FLASH_SALE_ID need setting; MAX_POLLS bounds the polling (a check fails if the order is still pending then).
import http from "k6/http";
import { check, sleep } from "k6";

export const options = {
  vus: 10,
  duration: "30s",
  thresholds: { checks: ["rate==1"] },
};

const BASE_URL = __ENV.BASE_URL || "http://localhost:8000";
const FLASH_SALE_ID = __ENV.FLASH_SALE_ID;
const POLL_S = Number(__ENV.POLL_S || 1);
const MAX_POLLS = Number(__ENV.MAX_POLLS || 30);

export function setup() {
  const res = http.get(`${BASE_URL}/users`);
  check(res, { "users listed": (r) => r.status === 200 && Array.isArray(r.json()) });
  return { userIds: res.json().map((user) => user.id) };
}

export default function (data) {
  const body = JSON.stringify({
    user_id: data.userIds[Math.floor(Math.random() * data.userIds.length)],
    flash_sale_id: FLASH_SALE_ID,
    quantity: 1,
  });
  const res = http.post(`${BASE_URL}/orders`, body, { headers: { "Content-Type": "application/json" } });
  const accepted = check(res, {
    "is status 202": (r) => r.status === 202,
    "accepted as pending, with a status URL": (r) =>
      r.json("status") === "pending" && r.json("status_url") === `/orders/${r.json("order_id")}/status`,
  });
  if (!accepted) return;
  let status = "pending";
  for (let poll = 0; poll < MAX_POLLS && status === "pending"; poll++) {
    sleep(POLL_S);
    status = http.get(`${BASE_URL}${res.json("status_url")}`).json("status");
  }
  check(status, { "settled: completed or failed": (s) => s === "completed" || s === "failed" });
}
