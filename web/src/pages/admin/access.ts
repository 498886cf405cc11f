// What each administration page and action needs, and who may act on a given item. The
// console hides what a role may not do (docs/console.md); the server still decides
// (server/roles.py, grants.py, approvals.py) and its refusal is shown when it refuses.
import { permissionsOf } from '@/auth/roles'
import type { ApprovalView, GrantView } from './types'

/** The permission each page needs (its route's meta.permission and menu entry). */
export const PAGE_PERMISSION = {
  users: 'users.read',
  approvals: 'users.write',
  tokens: 'tokens.manage',
  grants: 'grants.read',
  agents: 'agents.read',
} as const

/** The permission of each action inside the pages. */
export const ACTION_PERMISSION = {
  userWrite: 'users.write',
  tokenManage: 'tokens.manage',
  grantRequest: 'grants.request',
  grantDecide: 'grants.decide',
  agentManage: 'agents.manage',
} as const

export type AdminPage = keyof typeof PAGE_PERMISSION
export type AdminAction = keyof typeof ACTION_PERMISSION

export function pagesFor(roles: readonly string[]): AdminPage[] {
  const granted = permissionsOf(roles)
  return (Object.keys(PAGE_PERMISSION) as AdminPage[])
    .filter((page) => granted.has(PAGE_PERMISSION[page]))
}

export function actionsFor(roles: readonly string[]): Set<AdminAction> {
  const granted = permissionsOf(roles)
  return new Set((Object.keys(ACTION_PERMISSION) as AdminAction[])
    .filter((action) => granted.has(ACTION_PERMISSION[action])))
}

export interface Viewer {
  name: string
  institution: string | null
  roles: readonly string[]
}

/** Approve or deny: a security administrator of the institution that owns the data,
 * never the requester, while the grant awaits a decision. */
export function mayDecideGrant(me: Viewer, grant: GrantView): boolean {
  return grant.state === 'requested' && permissionsOf(me.roles).has('grants.decide')
    && me.institution === grant.to_institution && me.name !== grant.requester
}

/** Revoke: the requester, or a security administrator of the data's institution, while
 * the grant is requested or approved. */
export function mayRevokeGrant(me: Viewer, grant: GrantView): boolean {
  if (!['requested', 'approved'].includes(grant.state)) return false
  return me.name === grant.requester || (permissionsOf(me.roles).has('grants.decide')
    && me.institution === grant.to_institution)
}

/** Approve: another security administrator than the requester and the account's holder. */
export function mayApprove(me: Viewer, approval: ApprovalView): boolean {
  return approval.state === 'pending' && permissionsOf(me.roles).has('users.write')
    && me.name !== approval.requested_by && me.name !== approval.target
}

/** Reject: another security administrator, or the requester withdrawing. */
export function mayReject(me: Viewer, approval: ApprovalView): boolean {
  return approval.state === 'pending' && permissionsOf(me.roles).has('users.write')
    && me.name !== approval.target
}

export const ADMIN_ROLES = ['sysadmin', 'secadmin', 'auditadmin'] as const
export const TOKEN_ROLES = ['operator', 'viewer'] as const

/** Roles that may be given together: never two of the three administrator roles. */
export function rolesProblem(roles: readonly string[]): 'none' | 'separation' | null {
  if (roles.length === 0) return 'none'
  const admins = roles.filter((role) => (ADMIN_ROLES as readonly string[]).includes(role))
  return admins.length > 1 ? 'separation' : null
}

const isAdmin = (role: string) => (ADMIN_ROLES as readonly string[]).includes(role)

export interface AccountChange {
  roles?: readonly string[]
  disable?: boolean
  resetPassword?: boolean
  resetTotp?: boolean
}

/** Whether a change to an account will wait for a second security administrator
 * (docs/server.md, four-eyes): an administrator role given or taken, or an
 * administrator's reset or disabling. A new account: `before` is empty. */
export function needsFourEyes(before: readonly string[], change: AccountChange): boolean {
  if (change.roles) {
    const given = change.roles.filter(isAdmin).sort().join()
    if (given !== before.filter(isAdmin).sort().join()) return true
  }
  const acts = change.disable === true || change.resetPassword === true || change.resetTotp === true
  return acts && before.some(isAdmin)
}
