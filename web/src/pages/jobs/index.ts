// The jobs page (its texts are in the shared locale files under `jobs`: the drawer and
// the run dialog in components/ share them).
import { List } from '@element-plus/icons-vue'
import type { PageArea } from '../types'

const jobs: PageArea = {
  name: 'jobs',
  routes: [
    { path: 'jobs', name: 'jobs', component: () => import('./JobsView.vue'),
      meta: { permission: 'jobs.read', title: 'menu.jobs' } },
  ],
  menu: [{ name: 'jobs', path: '/jobs', label: 'menu.jobs', permission: 'jobs.read', icon: List }],
  messages: { 'zh-CN': {}, en: {} },
}

export default jobs
