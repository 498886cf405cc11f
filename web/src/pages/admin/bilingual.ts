// An area's texts written as [Chinese, English] pairs in one tree, split into the two
// message trees vue-i18n takes: one place per text, so the languages cannot drift apart.

/** A tree whose leaves are [zh-CN, en] pairs. */
export interface Pairs {
  readonly [key: string]: readonly [string, string] | Pairs
}

/** One language's tree of a Pairs tree: the same keys, each a string. */
export type Half<T> = { -readonly [K in keyof T]: T[K] extends readonly [string, string] ? string : Half<T[K]> }

/** The tree of one language: 0 for Chinese, 1 for English. */
export function half<T extends Pairs>(pairs: T, index: 0 | 1): Half<T> {
  return Object.fromEntries(Object.entries(pairs).map(([key, value]) =>
    [key, isPair(value) ? value[index] : half(value, index)])) as Half<T>
}

function isPair(value: readonly [string, string] | Pairs): value is readonly [string, string] {
  return Array.isArray(value)
}
