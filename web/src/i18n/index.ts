// vue-i18n: Chinese by default, English on request; the choice is kept in localStorage.
// Element Plus's own texts follow (App.vue's el-config-provider), and <html lang> too.
import { createI18n } from 'vue-i18n'
import zhCN from './locales/zh-CN'
import en from './locales/en'
import { AREAS } from '@/pages'

export const LOCALES = ['zh-CN', 'en'] as const
export type Locale = (typeof LOCALES)[number]
export const DEFAULT_LOCALE: Locale = 'zh-CN'
export const LOCALE_KEY = 'medark.locale'
export const LOCALE_NAMES: Record<Locale, string> = { 'zh-CN': '中文', en: 'English' }

/** The shared texts, and each area's under its own name (pages/index.ts). An area whose
 * texts are still in the shared files (jobs) declares none. */
function withAreas<T extends object>(base: T, locale: 'zh-CN' | 'en'): T {
  const tree: Record<string, unknown> = { ...(base as Record<string, unknown>) }
  for (const area of AREAS) {
    const own = area.messages[locale]
    if (Object.keys(own).length === 0) continue
    if (area.name in tree) throw new Error(`texts of area ${area.name} clash with shared texts`)
    tree[area.name] = own
  }
  return tree as T
}

export const messages = { 'zh-CN': withAreas(zhCN, 'zh-CN'), en: withAreas(en, 'en') }

function isLocale(value: unknown): value is Locale {
  return typeof value === 'string' && (LOCALES as readonly string[]).includes(value)
}

/** The saved choice, else Chinese (the browser's language is not asked: the console is
 * Chinese first). */
export function savedLocale(storage: Pick<Storage, 'getItem'> | undefined = globalThis.localStorage
): Locale {
  try {
    const saved = storage?.getItem(LOCALE_KEY)
    return isLocale(saved) ? saved : DEFAULT_LOCALE
  } catch {
    return DEFAULT_LOCALE
  }
}

export const i18n = createI18n({
  legacy: false,
  locale: savedLocale(),
  fallbackLocale: DEFAULT_LOCALE,
  messages,
})

export function setLocale(locale: Locale): void {
  i18n.global.locale.value = locale
  try {
    localStorage.setItem(LOCALE_KEY, locale)
  } catch {
    // private mode: the choice lasts for this page only
  }
  document.documentElement.lang = locale
}
