// The console's audit viewer (issue 17): the audit administrator's alone (audit.read):
// search with filters and pages, export as JSON lines or CSV, verify the chain.
import { Document } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'audit',
  routes: [
    { path: 'audit', name: 'audit', component: () => import('./AuditView.vue'),
      meta: { permission: 'audit.read', title: 'audit.menu' } },
  ],
  menu: [{ name: 'audit', path: '/audit', label: 'audit.menu', permission: 'audit.read',
    icon: Document }],
  messages: { 'zh-CN': zh, en },
}

export default area
