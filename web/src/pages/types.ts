// One area of the console (a page or a few related ones): its routes, its menu entries
// and its texts in both languages. An area lives in its own folder under pages/ and is
// listed once in pages/index.ts, so adding a page touches no shared file but that list.
import type { RouteRecordRaw } from 'vue-router'
import type { MenuEntry } from '@/auth/menu'

/** A message tree: strings, or nested trees of strings. */
export interface MessageTree {
  [key: string]: string | MessageTree
}

/** The same keys as T, each a string: an area's English texts are typed by its Chinese
 * ones, so a missing or extra key is a type error. */
export type Translation<T> = { [K in keyof T]: T[K] extends string ? string : Translation<T[K]> }

export interface PageArea {
  /** The namespace of the area's texts (its messages are under this key). */
  name: string
  /** Child routes of the console layout; each page's meta.permission is checked by the
   * router's guard. */
  routes: RouteRecordRaw[]
  /** Its entries in the side menu, in order. */
  menu: MenuEntry[]
  messages: { 'zh-CN': MessageTree; en: MessageTree }
}
