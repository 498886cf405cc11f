import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import { DEFAULT_LOCALE, LOCALE_KEY, LOCALES, messages, savedLocale } from '@/i18n'

type Tree = { [key: string]: string | Tree }

function keys(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([key, value]) =>
    typeof value === 'string' ? [`${prefix}${key}`] : keys(value, `${prefix}${key}.`))
}

function leaves(tree: Tree): string[] {
  return Object.values(tree).flatMap((value) => typeof value === 'string' ? [value] : leaves(value))
}

describe('locales', () => {
  const zh = messages['zh-CN'] as unknown as Tree
  const en = messages.en as unknown as Tree

  it('have the same keys', () => {
    expect(keys(en).sort()).toEqual(keys(zh).sort())
    expect(keys(zh).length).toBeGreaterThan(50)
  })

  it('have no empty message', () => {
    for (const tree of [zh, en]) {
      expect(leaves(tree).filter((text) => !text.trim())).toEqual([])
    }
  })

  it('use the same placeholders in both languages', () => {
    const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort()
    const zhKeys = keys(zh)
    const at = (tree: Tree, key: string) =>
      key.split('.').reduce<string | Tree>((node, part) => (node as Tree)[part]!, tree) as string
    for (const key of zhKeys) {
      expect(placeholders(at(en, key)), key).toEqual(placeholders(at(zh, key)))
    }
  })

  it('compile and fill in every message in both languages', () => {
    const i18n = createI18n({ legacy: false, locale: 'zh-CN', messages })
    const t = i18n.global.t
    for (const locale of LOCALES) {
      i18n.global.locale.value = locale
      for (const key of keys(zh)) {
        const text = t(key, { seconds: 5, message: 'm', code: 'c', id: 1, eta: 'e', n: 1,
          m: 2, s: 3, h: 4, done: 'd', total: 't' })
        expect(text, key).not.toBe(key)
        expect(text, key).not.toMatch(/\{\w+\}/)
      }
    }
  })
})

describe('the saved language', () => {
  it('is Chinese by default and when the saved value is not a locale', () => {
    expect(DEFAULT_LOCALE).toBe('zh-CN')
    expect(savedLocale({ getItem: () => null })).toBe('zh-CN')
    expect(savedLocale({ getItem: () => 'fr' })).toBe('zh-CN')
  })

  it('is the one kept in localStorage', () => {
    expect(savedLocale({ getItem: (key) => (key === LOCALE_KEY ? 'en' : null) })).toBe('en')
  })
})
