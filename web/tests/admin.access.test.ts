import { describe, expect, it } from 'vitest'
import { ROLES } from '@/auth/roles'
import { menuFor } from '@/auth/menu'
import { actionsFor, mayApprove, mayDecideGrant, mayReject, mayRevokeGrant, needsFourEyes,
  pagesFor, rolesProblem } from '@/pages/admin/access'
import { changeParts, splitNames, timeAgo, tokenState, toneOf, userState,
  windowProblem } from '@/pages/admin/states'
import type { ApprovalView, GrantView, TokenView, UserView } from '@/pages/admin/types'

const menu = (role: string) => menuFor([role]).map((entry) => entry.name)

describe('who sees which page', () => {
  it('shows users, approvals and tokens to the security administrator only', () => {
    for (const role of ROLES) {
      const pages = pagesFor([role])
      const sec = role === 'secadmin'
      expect(pages.includes('users'), role).toBe(sec)
      expect(pages.includes('approvals'), role).toBe(sec)
      expect(pages.includes('tokens'), role).toBe(sec)
      expect(menu(role).includes('users'), role).toBe(sec)
    }
  })

  it('shows the audit viewer to the audit administrator alone', () => {
    for (const role of ROLES) expect(menu(role).includes('audit'), role).toBe(role === 'auditadmin')
  })

  it('shows grants to every role, agents to those who hold agents.read', () => {
    for (const role of ROLES) expect(pagesFor([role]), role).toContain('grants')
    expect(ROLES.filter((role) => pagesFor([role]).includes('agents')).sort())
      .toEqual(['operator', 'sysadmin', 'viewer'])
    expect(menu('auditadmin')).not.toContain('agents')
  })

  it('shows systems and plans to readers of plans; editing to sysadmin only', () => {
    expect(ROLES.filter((role) => menu(role).includes('systems')).sort())
      .toEqual(['operator', 'sysadmin', 'viewer'])
  })
})

describe('which actions a role gets', () => {
  it('gives each action to the roles that hold its permission', () => {
    expect([...actionsFor(['secadmin'])].sort()).toEqual(['grantDecide', 'tokenManage', 'userWrite'])
    expect([...actionsFor(['sysadmin'])]).toEqual(['agentManage'])
    expect([...actionsFor(['operator'])]).toEqual(['grantRequest'])
    expect([...actionsFor(['viewer'])]).toEqual(['grantRequest'])
    expect([...actionsFor(['auditadmin'])]).toEqual([])
  })
})

const grant = (over: Partial<GrantView>): GrantView => ({
  id: 1, requester: 'op1', from_institution: 'hosp-a', to_institution: 'hosp-b',
  scope: { systems: ['his'] }, purpose: 'p', starts_at: null, ends_at: null, state: 'requested',
  active: false, decided_by: null, decided_at: null, decision_note: null, revoked_by: null,
  revoked_at: null, created_at: null, ...over })

describe('grant decisions', () => {
  const ownerSec = { name: 'secb', institution: 'hosp-b', roles: ['secadmin'] }
  const centerSec = { name: 'secadmin', institution: 'center', roles: ['secadmin'] }
  const requester = { name: 'op1', institution: 'hosp-a', roles: ['operator'] }

  it('lets only the data owner\'s security administrator decide a requested grant', () => {
    expect(mayDecideGrant(ownerSec, grant({}))).toBe(true)
    expect(mayDecideGrant(centerSec, grant({}))).toBe(false)
    expect(mayDecideGrant(requester, grant({}))).toBe(false)
    expect(mayDecideGrant(ownerSec, grant({ state: 'approved' }))).toBe(false)
    expect(mayDecideGrant({ ...ownerSec, name: 'op1' }, grant({}))).toBe(false)
  })

  it('lets the requester or the owner revoke while requested or approved', () => {
    expect(mayRevokeGrant(requester, grant({ state: 'approved' }))).toBe(true)
    expect(mayRevokeGrant(ownerSec, grant({}))).toBe(true)
    expect(mayRevokeGrant(centerSec, grant({}))).toBe(false)
    expect(mayRevokeGrant(requester, grant({ state: 'denied' }))).toBe(false)
  })
})

const approval = (over: Partial<ApprovalView>): ApprovalView => ({
  id: 1, kind: 'user.update', target: 'sys-backup', institution: 'hosp-a',
  change: { roles: null, disabled: true, reset_password: false, reset_totp: false },
  reasons: ['admin_disable'], requested_by: 'secadmin', state: 'pending', created_at: null,
  expires_at: null, decided_by: null, decided_at: null, note: null, ...over })

describe('four-eyes approvals', () => {
  const other = { name: 'secadmin2', institution: 'center', roles: ['secadmin'] }
  const requester = { name: 'secadmin', institution: 'center', roles: ['secadmin'] }

  it('lets another security administrator approve, never the requester or the holder', () => {
    expect(mayApprove(other, approval({}))).toBe(true)
    expect(mayApprove(requester, approval({}))).toBe(false)
    expect(mayApprove(other, approval({ target: 'secadmin2' }))).toBe(false)
    expect(mayApprove(other, approval({ state: 'approved' }))).toBe(false)
    expect(mayApprove({ ...other, roles: ['sysadmin'] }, approval({}))).toBe(false)
  })

  it('lets the requester withdraw and another reject', () => {
    expect(mayReject(requester, approval({}))).toBe(true)
    expect(mayReject(other, approval({}))).toBe(true)
    expect(mayReject(other, approval({ state: 'expired' }))).toBe(false)
  })

  it('knows which changes wait for a second security administrator', () => {
    expect(needsFourEyes([], { roles: ['operator'] })).toBe(false)
    expect(needsFourEyes([], { roles: ['sysadmin'] })).toBe(true)
    expect(needsFourEyes(['viewer'], { roles: ['viewer', 'operator'] })).toBe(false)
    expect(needsFourEyes(['sysadmin'], { roles: ['operator'] })).toBe(true)
    expect(needsFourEyes(['sysadmin'], { resetPassword: true })).toBe(true)
    expect(needsFourEyes(['operator'], { resetPassword: true, disable: true })).toBe(false)
  })

  it('says an approval\'s change part by part', () => {
    expect(changeParts({ roles: ['sysadmin'], disabled: null, reset_password: true, reset_totp: false }))
      .toEqual([{ key: 'roles', message: 'sysadmin' }, { key: 'password' }])
    expect(changeParts({ roles: null, disabled: false, reset_password: false, reset_totp: true }))
      .toEqual([{ key: 'enable' }, { key: 'totp' }])
  })
})

describe('roles, states and forms', () => {
  it('refuses two administrator roles together and no role at all', () => {
    expect(rolesProblem([])).toBe('none')
    expect(rolesProblem(['sysadmin', 'secadmin'])).toBe('separation')
    expect(rolesProblem(['sysadmin', 'operator'])).toBeNull()
  })

  const now = Date.parse('2026-12-06T10:00:00Z')
  it('reads a token\'s and a user\'s state', () => {
    const token = { name: 't', role: 'viewer', institution: 'a', created_by: 's', created_at: null,
      expires_at: null, revoked_at: null, last_used: null } as TokenView
    expect(tokenState(token, now)).toBe('active')
    expect(tokenState({ ...token, expires_at: '2026-12-06T09:00:00Z' }, now)).toBe('expired')
    expect(tokenState({ ...token, revoked_at: '2026-12-01T00:00:00Z' }, now)).toBe('revoked')
    const user = { name: 'u', institution: 'a', roles: [], disabled: false, must_change_password: false,
      totp_enrolled: false, locked_until: '2026-12-06T10:05:00Z', created_at: '' } as UserView
    expect(userState(user, now)).toBe('locked')
    expect(userState({ ...user, locked_until: '2026-12-06T09:00:00Z' }, now)).toBe('active')
    expect(userState({ ...user, disabled: true }, now)).toBe('disabled')
    expect(toneOf('offline')).toBe('bad')
    expect(toneOf('something-new')).toBe('off')
  })

  it('splits typed names and checks a grant\'s window', () => {
    expect(splitNames(' his, lis、his\npacs ')).toEqual(['his', 'lis', 'pacs'])
    expect(windowProblem(null, null, now)).toBe('missing')
    expect(windowProblem(null, new Date(now - 1000), now)).toBe('order')
    expect(windowProblem(null, new Date(now + 31 * 86_400_000), now)).toBe('long')
    expect(windowProblem(new Date(now + 86_400_000), new Date(now + 30 * 86_400_000), now)).toBeNull()
  })

  it('says how long ago in the locale', () => {
    expect(timeAgo('2026-12-06T09:57:00Z', 'en', now)).toBe('3 minutes ago')
    expect(timeAgo('2026-12-06T09:59:58Z', 'zh-CN', now)).toBe('2秒钟前')
    expect(timeAgo(null, 'en', now)).toBe('')
  })
})
