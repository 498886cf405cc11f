// The compliance area (issue 17): the tier × 等保 level table with its evidence, and
// each failing item explained, per institution.
import { Stamp } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'compliance',
  routes: [
    { path: 'compliance', name: 'compliance', component: () => import('./ComplianceView.vue'),
      meta: { permission: 'compliance.read', title: 'compliance.title' } },
  ],
  menu: [{ name: 'compliance', path: '/compliance', label: 'compliance.title',
    permission: 'compliance.read', icon: Stamp }],
  messages: { 'zh-CN': zh, en },
}

export default area
