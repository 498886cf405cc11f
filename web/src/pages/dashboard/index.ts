// The console's dashboard (issue 17): every system's protection at a glance, for the
// institution or each institution of a regional center; the first page of every role's
// menu (dashboard.read), so the home page.
import { Odometer } from '@element-plus/icons-vue'
import { prefetch, prefetchAtStart } from '@/util/prefetch'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const view = () => import('./DashboardView.vue')
// opened at this address: the data and the chunk are asked for beside GET /api/me
prefetchAtStart('/dashboard', '/api/dashboard', view)

const area: PageArea = {
  name: 'dashboard',
  routes: [
    {
      path: 'dashboard',
      name: 'dashboard',
      // the data is asked for while the page's chunk loads (util/prefetch.ts)
      component: () => {
        prefetch('/api/dashboard')
        return view()
      },
      meta: { permission: 'dashboard.read', title: 'dashboard.menu' },
    },
  ],
  menu: [{ name: 'dashboard', path: '/dashboard', label: 'dashboard.menu',
    permission: 'dashboard.read', icon: Odometer }],
  messages: { 'zh-CN': zh, en },
}

export default area
