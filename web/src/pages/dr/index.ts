// The DR area (issue 17): each system's DR state, switch-over, failover, failback and
// drill behind a two-step confirmation, the steps live, and each system's history.
import { Switch } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'dr',
  routes: [
    { path: 'dr', name: 'dr', component: () => import('./DrView.vue'),
      meta: { permission: 'dr.read', title: 'dr.title' } },
  ],
  menu: [{ name: 'dr', path: '/dr', label: 'dr.title', permission: 'dr.read', icon: Switch }],
  messages: { 'zh-CN': zh, en },
}

export default area
