// POSIX sh helpers for rendered scripts: one quoting rule for every value put into shell text.

/** Quotes a value as one sh word: single quotes, each embedded ' written as '\''. */
export function shellQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}
