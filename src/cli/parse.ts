/**
 * Argument parsers for the CLI's options; each failure is a {@link UsageError} (exit 2).
 *
 * @packageDocumentation
 */
import { UsageError } from './errors';

/** Parser for an integer ≥ 0 (e.g. `--port`, where 0 means "pick a free one"). */
export function parseNonNegativeInt(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, not "${value}"`);
    const n = Number(value);
    if (flag === '--port' && n > 65535) throw new UsageError(`--port must be at most 65535, not ${n}`);
    return n;
  };
}

/** Parser for an integer ≥ 1. */
export function parsePositiveInt(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${flag} must be a whole number ≥ 1, not "${value}"`);
    return Number(value);
  };
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4 };

/** Parser for a size in bytes: a whole number with an optional binary unit (`512MiB`, `10G`, `4096`). */
export function parseByteSize(flag: string): (value: string) => number {
  return (value) => {
    const m = /^(\d+)\s*([A-Za-z]*)$/.exec(value.trim());
    const unit = m ? BYTE_UNITS[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined) throw new UsageError(`${flag} must be a size such as 10GiB, 512MiB or 4096, not "${value}"`);
    return Number(m[1]) * unit;
  };
}

/** Collector for a repeatable option: `--x a --x b` → `['a', 'b']`. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `--label K=V` values into an object (the library checks keys and values). */
export function parseLabels(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of values) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label "${item}": expected KEY=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/**
 * `--build-arg K=V` values into an object. As with `docker build`, a bare `K` takes its value from the
 * environment; an unset one is an error rather than a silent empty string.
 */
export function parseBuildArgs(values: string[], env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of values) {
    const eq = item.indexOf('=');
    const key = eq === -1 ? item : item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new UsageError(`--build-arg "${item}": expected KEY=VALUE with KEY made of letters, digits and _`);
    }
    if (eq === -1) {
      const fromEnv = env[key];
      if (fromEnv === undefined) throw new UsageError(`--build-arg ${key}: no "=" and ${key} is not set in the environment`);
      out[key] = fromEnv;
    } else {
      out[key] = item.slice(eq + 1);
    }
  }
  return out;
}

/** Parser for a duration: `90s`, `30m`, `1h`, `500ms`, or seconds (`600`). Resolves milliseconds. */
export function parseDuration(flag: string): (value: string) => number {
  return (value) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
    const unit = m ? ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as Record<string, number>)[m[2] ?? 's'] : 0;
    const ms = m ? Math.round(Number(m[1]) * unit) : 0;
    if (!m || ms < 1) throw new UsageError(`${flag} must be a duration such as 90s, 30m or 1h, not "${value}"`);
    return ms;
  };
}

/** Parser for a positive decimal, e.g. `--build-cpus 1.5`. */
export function parsePositiveNumber(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0)) throw new UsageError(`${flag} must be a number > 0 such as 1 or 1.5, not "${value}"`);
    return n;
  };
}
