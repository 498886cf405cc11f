// The jobs page (its texts are in the shared locale files under `jobs`: the drawer and
// the run dialog in components/ share them).
import { List } from '@element-plus/icons-vue'
import { prefetch, prefetchAtStart } from '@/util/prefetch'
import type { PageArea } from '../types'
import { filtersOf, listPath } from './jobsLive'

const view = () => import('./JobsView.vue')
// opened at this address: its first page and the chunk asked for beside GET /api/me
prefetchAtStart('/jobs', listPath(filtersOf(Object.fromEntries(
  new URLSearchParams(location.search)))), view)

const jobs: PageArea = {
  name: 'jobs',
  routes: [
    { path: 'jobs', name: 'jobs', component: view,
      // the first page asked for while the chunk loads (util/prefetch.ts)
      beforeEnter: (to) => { prefetch(listPath(filtersOf(to.query))) },
      meta: { permission: 'jobs.read', title: 'menu.jobs' } },
  ],
  menu: [{ name: 'jobs', path: '/jobs', label: 'menu.jobs', permission: 'jobs.read', icon: List }],
  messages: { 'zh-CN': {}, en: {} },
}

export default jobs
