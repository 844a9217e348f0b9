// The checks a run records, and the assertions they are made of. A check passes unless its body
// throws; an expected refusal must match Azure's HTTP status and error code exactly.

export const checks = [];

/** Run one named check; it passes unless `body` throws. Its return value is the detail. */
export async function check(name, body) {
  try {
    const detail = await body();
    checks.push({ name, ok: true, detail: detail ?? "" });
  } catch (e) {
    checks.push({ name, ok: false, detail: describe(e) });
  }
}

/** The error code of a failed call: the SDK's `code`, or for a HEAD (no body) the parsed
 * x-ms-error-code header in `details`. */
export function errorCode(e) {
  return e.code ?? e.details?.errorCode;
}

export function describe(e) {
  if (e?.statusCode !== undefined)
    return `${e.statusCode} ${errorCode(e) ?? ""}: ${String(e.message).split("\n")[0]}`;
  return String(e?.message ?? e);
}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

export function expectSame(actual, expected, what) {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  expect(a === b, `${what}: got ${a.slice(0, 400)}, expected ${b.slice(0, 400)}`);
  return `${what}: ${b.length > 120 ? `${b.slice(0, 120)}...` : b}`;
}

/** A hash the service answered (bytes, or undefined when it sent none) against the one computed here. */
export function expectHash(answered, computed, what) {
  const hex = (bytes) => Buffer.from(bytes ?? []).toString("hex");
  return expectSame(hex(answered), hex(computed), what);
}

export function expectBytes(actual, expected, what) {
  expect(actual.length === expected.length, `${what}: ${actual.length} bytes, expected ${expected.length}`);
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  expect(at < 0, `${what}: first difference at byte ${at}`);
  return `${what}: ${actual.length} bytes equal`;
}

/** `call` must fail with exactly this HTTP status and error code (x-ms-error-code / ARM error.code). */
export async function expectError(name, call, status, code) {
  await check(name, async () => {
    let outcome;
    try {
      await call();
    } catch (e) {
      outcome = e;
    }
    expect(outcome !== undefined, `succeeded; expected ${status} ${code ?? ""}`);
    expect(
      outcome.statusCode === status && (code === undefined || errorCode(outcome) === code),
      `got ${describe(outcome)}; expected ${status} ${code ?? ""}`,
    );
    return `${status} ${code ?? ""}`;
  });
}

/** A section that throws outside its checks is one failed check, never a stack trace (which could
 * print a request, SAS and all). */
export async function section(name, run) {
  try {
    return await run();
  } catch (e) {
    checks.push({ name: `${name}: stopped`, ok: false, detail: describe(e) });
    return undefined;
  }
}
