// ARM by plain fetch: requests with the root bearer token, ARM's error shape as an exception, and
// long-running operations.

import { ARM, TOKEN } from "./env.mjs";

const ARM_API = "2024-03-02";
const LRO_POLLS = 30; // the emulator finishes before its 202; a real ARM may take a few polls

export class ArmError extends Error {
  constructor(status, code, message) {
    super(message);
    this.statusCode = status;
    this.code = code;
  }
}

export async function armFetch(url, method = "GET", body = undefined, token = TOKEN) {
  const response = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ArmError(response.status, json?.error?.code, json?.error?.message ?? text);
  return { response, json };
}

/** The URL of an ARM path (from /subscriptions/...), with the api-version every request needs. */
export function armUrl(path) {
  return `${ARM}${path}?api-version=${ARM_API}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One ARM long-running operation, polled as @azure/core-lro does: the first poll at once, later
 * ones after Retry-After. PUT returns the resource (a final GET), POST the Location URL's result. */
export async function lro(method, path, body) {
  const url = armUrl(path);
  const { response, json } = await armFetch(url, method, body);
  if (response.status !== 202) return json;
  const status = response.headers.get("azure-asyncoperation");
  const location = response.headers.get("location");
  let wait = 0;
  for (let poll = 0; poll < LRO_POLLS; poll++) {
    await sleep(wait);
    const { response: polled, json: state } = await armFetch(status);
    if (state.status === "Succeeded") {
      if (method === "PUT" || method === "PATCH") return (await armFetch(url)).json;
      return location ? (await armFetch(location)).json : null;
    }
    if (state.status !== "InProgress")
      throw new ArmError(200, state.error?.code, `operation ${state.status}`);
    wait = 1000 * Number(polled.headers.get("retry-after") ?? 1);
  }
  throw new Error(`${method} ${path}: not finished after ${LRO_POLLS} polls`);
}
