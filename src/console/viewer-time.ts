// Times as a person reads them: relative ("3 min ago", "in 5 min") with the absolute time, in
// the viewer's chosen time zone (UTC unless they chose another, a cookie of theirs), in the
// title attribute. Rendered on the server at the page's time; no script.
import { timestamp } from '../core/text.ts';

export const TZ_COOKIE = 'st_console_tz';
export const DEFAULT_ZONE = 'UTC';

let zones: Set<string> | null = null;

/** The IANA zones this Node knows (and UTC). */
export function timeZones(): string[] {
  return [DEFAULT_ZONE, ...Intl.supportedValuesOf('timeZone').filter((z) => z !== DEFAULT_ZONE)];
}

/** The zone if it is one this Node knows, else null (a cookie is anyone's to write). */
export function knownZone(zone: unknown): string | null {
  if (typeof zone !== 'string' || zone.length > 64) return null;
  zones ??= new Set(timeZones());
  return zones.has(zone) ? zone : null;
}

/** 2025-01-31 13:00:00 GMT+1 in Europe/Paris; 2025-01-31 12:00:00 UTC in UTC. */
export function absoluteTime(d: Date, zone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    })
      .formatToParts(d)
      .map((p) => [p.type, p.value]),
  );
  return `${parts['year']}-${parts['month']}-${parts['day']} ${parts['hour']}:${parts['minute']}:${parts['second']} ${parts['timeZoneName']}`;
}

/** 190 -> "3 min ago", -300 -> "in 5 min": the largest whole unit. */
export function relativeTime(secondsAgo: number): string {
  const s = Math.abs(secondsAgo);
  const [n, unit] =
    s < 60
      ? [Math.floor(s), 's']
      : s < 3600
        ? [Math.floor(s / 60), 'min']
        : s < 86400 * 2
          ? [Math.floor(s / 3600), 'h']
          : [Math.floor(s / 86400), 'd'];
  if (n === 0) return 'just now';
  return secondsAgo >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

export interface ShownTime {
  /** For the datetime attribute; null when there is no time to give (none, infinite, unreadable). */
  iso: string | null;
  /** The absolute time in the viewer's zone and in UTC, for the title attribute. */
  title: string;
  /** What the page shows. */
  text: string;
}

export function shownTime(value: Date | string | number | null | undefined, zone: string, now: number): ShownTime {
  const fallback = timestamp(value);
  const d = value instanceof Date ? value : value === null || value === undefined ? null : new Date(value);
  if (!d || !Number.isFinite(d.getTime()) || value === Infinity || value === -Infinity)
    return { iso: null, title: fallback, text: fallback };
  const iso = d.toISOString();
  const abs = absoluteTime(d, zone);
  return { iso, title: `${abs} (${iso})`, text: relativeTime((now - d.getTime()) / 1000) };
}
