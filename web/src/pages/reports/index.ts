// The reports area (issue 17): generate, list and download the monthly and quarterly
// reports (the three administrators read them: reports.read).
import { Document } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'reports',
  routes: [
    { path: 'reports', name: 'reports', component: () => import('./ReportsView.vue'),
      meta: { permission: 'reports.read', title: 'reports.title' } },
  ],
  menu: [{ name: 'reports', path: '/reports', label: 'reports.title', permission: 'reports.read',
    icon: Document }],
  messages: { 'zh-CN': zh, en },
}

export default area
