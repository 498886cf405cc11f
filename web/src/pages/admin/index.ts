// The console's administration area (issue 17): users and roles, four-eyes approvals
// and API tokens (security administrators), cross-institution grants (every role reads
// them; operators and viewers request, the data owner's security administrator
// decides), agents and their state (sysadmin, operators, viewers; sysadmin enrols and
// revokes). One route and menu entry per page, each behind its own permission.
import { Checked, Connection, Key, Share, User } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { PAGE_PERMISSION } from './access'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'admin',
  routes: [
    { path: 'users', name: 'users', component: () => import('./UsersView.vue'),
      meta: { permission: PAGE_PERMISSION.users, title: 'admin.menu.users' } },
    { path: 'approvals', name: 'approvals', component: () => import('./ApprovalsView.vue'),
      meta: { permission: PAGE_PERMISSION.approvals, title: 'admin.menu.approvals' } },
    { path: 'tokens', name: 'tokens', component: () => import('./TokensView.vue'),
      meta: { permission: PAGE_PERMISSION.tokens, title: 'admin.menu.tokens' } },
    { path: 'grants', name: 'grants', component: () => import('./GrantsView.vue'),
      meta: { permission: PAGE_PERMISSION.grants, title: 'admin.menu.grants' } },
    { path: 'agents', name: 'agents', component: () => import('./AgentsView.vue'),
      meta: { permission: PAGE_PERMISSION.agents, title: 'admin.menu.agents' } },
  ],
  menu: [
    { name: 'users', path: '/users', label: 'admin.menu.users', permission: PAGE_PERMISSION.users, icon: User },
    { name: 'approvals', path: '/approvals', label: 'admin.menu.approvals', permission: PAGE_PERMISSION.approvals, icon: Checked },
    { name: 'tokens', path: '/tokens', label: 'admin.menu.tokens', permission: PAGE_PERMISSION.tokens, icon: Key },
    { name: 'grants', path: '/grants', label: 'admin.menu.grants', permission: PAGE_PERMISSION.grants, icon: Share },
    { name: 'agents', path: '/agents', label: 'admin.menu.agents', permission: PAGE_PERMISSION.agents, icon: Connection },
  ],
  messages: { 'zh-CN': zh, en },
}

export default area
