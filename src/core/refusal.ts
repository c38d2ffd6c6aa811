// A refused write to a seller transfer starts its DETAIL with one line of key=value pairs (the
// transfer id, the move; docs/service-authors.md, "Reading a refusal") for programs, then the
// text for people. The database writes that line (marketplace.seller_transfer_refusal_detail);
// the CLI and the console show people the text after it.
const FIELDS_LINE = /^[a-z_]+=[^\s=]+(?: [a-z_]+=[^\s=]+)*$/;

/** A PostgreSQL error's DETAIL without a refusal's key=value line: what a person reads. */
export function detailForPeople(detail: string | undefined | null): string | undefined {
  if (!detail) return undefined;
  const newline = detail.indexOf('\n');
  const first = newline < 0 ? detail : detail.slice(0, newline);
  if (!FIELDS_LINE.test(first)) return detail;
  return newline < 0 ? undefined : detail.slice(newline + 1) || undefined;
}
