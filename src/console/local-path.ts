// Where a person goes after logging in: the `next` the login page was given, only when it stays
// on the console. Browsers strip tabs and newlines from a Location and read a backslash as a
// slash, so "/\tevil.example" or "/\\evil.example" leave the site though they start with one
// slash: such characters are refused outright, raw or percent-encoded, and what is left must
// resolve (WHATWG URL, as a browser does) to the console's own origin, raw and decoded alike.

/** Stands in for the console's origin: only the path, query and fragment are ever returned. */
const ORIGIN = 'http://console.invalid';
/** Whitespace (Unicode's too), control characters and backslashes. */
const FORBIDDEN = /[\s\p{Cc}\p{Cf}\\]/u;

function staysHere(candidate: string): URL | null {
  if (!candidate.startsWith('/') || FORBIDDEN.test(candidate)) return null;
  try {
    const url = new URL(candidate, ORIGIN);
    return url.origin === ORIGIN ? url : null;
  } catch {
    return null;
  }
}

/** `next` as a path on this site (normalised, percent-encoded by URL), or "/" (the overview). */
export function localPath(next: unknown): string {
  if (typeof next !== 'string' || next.length > 2048) return '/';
  const url = staysHere(next);
  if (!url) return '/';
  // Encoded forms ("/%09/evil", "/%2F%2Fevil", twice encoded) must hold up once decoded too.
  let text = next;
  for (let i = 0; i < 3; i++) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(text);
    } catch {
      break; // a stray "%": nothing decodes it further, a browser included
    }
    if (decoded === text) break;
    if (!staysHere(decoded) || decoded.startsWith('//')) return '/';
    text = decoded;
  }
  // Dot segments can collapse to a protocol-relative "//host" ("/..//evil.example"): refused too.
  const path = `${url.pathname}${url.search}${url.hash}`;
  return path.startsWith('//') ? '/' : path;
}
