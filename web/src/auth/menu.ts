// The side menu: one entry per page that exists, each shown only to the roles that hold
// its permission. Each area declares its entries beside its routes (pages/), whose
// meta.permission the router's guard checks the same way.
import type { Component } from 'vue'
import { AREAS } from '@/pages'
import { permissionsOf } from './roles'

export interface MenuEntry {
  /** The route's name and path. */
  name: string
  path: string
  /** The i18n key of the label. */
  label: string
  permission: string
  icon: Component
}

/** Every area's entries (pages/index.ts), in the areas' order. */
export const MENU: readonly MenuEntry[] = AREAS.flatMap((area) => area.menu)

/** The entries a user with these roles sees, in menu order. */
export function menuFor(roles: readonly string[]): MenuEntry[] {
  const granted = permissionsOf(roles)
  return MENU.filter((entry) => granted.has(entry.permission))
}
