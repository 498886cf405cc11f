// The console's systems area (issue 17): sites, systems, repositories and plans of each
// institution's configuration, and the configuration document itself with its versions,
// differences and (plans.write) an editor whose refusals are shown on their lines.
import { Files } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'systems',
  routes: [
    { path: 'systems', name: 'systems', component: () => import('./SystemsView.vue'),
      meta: { permission: 'plans.read', title: 'systems.menu' } },
  ],
  menu: [{ name: 'systems', path: '/systems', label: 'systems.menu', permission: 'plans.read',
    icon: Files }],
  messages: { 'zh-CN': zh, en },
}

export default area
