// The alerts area (issue 17): open and recent alerts with their severity, filtered, kept
// current from the live stream.
import { Bell } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'alerts',
  routes: [
    { path: 'alerts', name: 'alerts', component: () => import('./AlertsView.vue'),
      meta: { permission: 'alerts.read', title: 'alerts.title' } },
  ],
  menu: [{ name: 'alerts', path: '/alerts', label: 'alerts.title', permission: 'alerts.read', icon: Bell }],
  messages: { 'zh-CN': zh, en },
}

export default area
