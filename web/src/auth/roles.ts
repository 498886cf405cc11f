// Roles and what they may do, mirrored from the server (src/medark/server/roles.py via
// permissions.json). The console hides what a role may not do; the server still refuses
// it when asked directly.
import table from './permissions.json'

export const ROLES = ['sysadmin', 'secadmin', 'auditadmin', 'operator', 'viewer'] as const
export type Role = (typeof ROLES)[number]

const PERMISSIONS: Record<string, readonly string[]> = Object.fromEntries(
  Object.entries(table).filter(([role]) => !role.startsWith('_')),
) as Record<string, readonly string[]>

/** The union of the roles' permissions; unknown roles grant nothing. */
export function permissionsOf(roles: readonly string[]): Set<string> {
  const granted = new Set<string>()
  for (const role of roles) {
    for (const permission of PERMISSIONS[role] ?? []) granted.add(permission)
  }
  return granted
}

export function allowed(roles: readonly string[], permission: string): boolean {
  return permissionsOf(roles).has(permission)
}
