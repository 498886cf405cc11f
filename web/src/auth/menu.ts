// The side menu: one entry per page that exists, each shown only to the roles that hold
// its permission. A page added to the router adds its entry here (and its route's
// meta.permission, which the router's guard checks the same way).
import type { Component } from 'vue'
import { List } from '@element-plus/icons-vue'
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

export const MENU: readonly MenuEntry[] = [
  { name: 'jobs', path: '/jobs', label: 'menu.jobs', permission: 'jobs.read', icon: List },
]

/** The entries a user with these roles sees, in menu order. */
export function menuFor(roles: readonly string[]): MenuEntry[] {
  const granted = permissionsOf(roles)
  return MENU.filter((entry) => granted.has(entry.permission))
}
