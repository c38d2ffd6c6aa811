// One line that says what went wrong, whatever was thrown: some libraries reject with undefined,
// a bare object or an Error without a message, and "undefined" is not a line a person can act on.
export function describeError(e: unknown): string {
  // Node's connect() to a name with several addresses rejects with an AggregateError and no message.
  if (e instanceof AggregateError && !e.message && e.errors.length) return describeError(e.errors[0]);
  const message = e instanceof Error ? e.message : typeof e === 'string' ? e : '';
  const code = (e as { code?: unknown } | null | undefined)?.code;
  let text = message.trim().split('\n')[0] ?? '';
  if (!text || text === 'undefined' || text === '[object Object]') {
    const shown = e instanceof Error ? e.name : e === undefined || e === null ? '' : safeJson(e);
    text = shown ? `failed without a message (${shown})` : 'failed without saying why';
  }
  return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
}

function safeJson(v: unknown): string {
  try {
    return (JSON.stringify(v) ?? String(v)).slice(0, 200);
  } catch {
    return String(v);
  }
}
