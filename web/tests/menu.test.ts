import { describe, expect, it } from 'vitest'
import { MENU, menuFor } from '@/auth/menu'
import { ROLES, allowed, permissionsOf } from '@/auth/roles'
import table from '@/auth/permissions.json'
import { routes } from '@/router'

function names(roles: string[]): string[] {
  return menuFor(roles).map((entry) => entry.name)
}

describe('the permissions table', () => {
  it('names every role and only the roles', () => {
    expect(Object.keys(table).filter((key) => !key.startsWith('_')).sort())
      .toEqual([...ROLES].sort())
  })

  it('keeps the separation of duties: only operators and sysadmins run jobs', () => {
    const runners = ROLES.filter((role) => allowed([role], 'jobs.run'))
    expect(runners.sort()).toEqual(['operator', 'sysadmin'])
    expect(ROLES.filter((role) => allowed([role], 'audit.read'))).toEqual(['auditadmin'])
    expect(ROLES.filter((role) => allowed([role], 'users.write'))).toEqual(['secadmin'])
  })

  it('grants the union of the roles and nothing for an unknown role', () => {
    expect(permissionsOf(['nobody']).size).toBe(0)
    const both = permissionsOf(['viewer', 'auditadmin'])
    expect(both.has('audit.read') && both.has('snapshots.read')).toBe(true)
  })
})

describe('the menu', () => {
  it('shows each role the pages its permissions open', () => {
    for (const role of ROLES) {
      const expected = MENU.filter((entry) => allowed([role], entry.permission))
        .map((entry) => entry.name)
      expect(names([role]), role).toEqual(expected)
    }
  })

  it('shows jobs to every role and nothing to an account without roles', () => {
    for (const role of ROLES) expect(names([role])).toContain('jobs')
    expect(names([])).toEqual([])
    expect(names(['nobody'])).toEqual([])
  })

  it('has an entry only for a page that exists, needing the same permission', () => {
    const pages = routes.flatMap((route) => [route, ...(route.children ?? [])])
    for (const entry of MENU) {
      const page = pages.find((route) => route.name === entry.name)
      expect(page, entry.name).toBeDefined()
      expect(page?.meta?.permission, entry.name).toBe(entry.permission)
      expect(`/${page?.path}`.replace('//', '/')).toBe(entry.path)
    }
  })
})
