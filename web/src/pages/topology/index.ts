// The console's topology (issue 17): sites → systems → repositories, offsite copies and
// standbys with each link's live state and lag; ECharts only in this area's lazy chunk.
import { Share } from '@element-plus/icons-vue'
import { prefetch, prefetchAtStart } from '@/util/prefetch'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const view = () => {
  void import('./TopologyGraph.vue')
  return import('./TopologyView.vue')
}
// opened at this address: the data and the chunks are asked for beside GET /api/me
prefetchAtStart('/topology', '/api/topology', view)

const area: PageArea = {
  name: 'topology',
  routes: [
    // the graph's chunk (ECharts) and the data are asked for with the page's chunk, not
    // one after the other (util/prefetch.ts)
    {
      path: 'topology',
      name: 'topology',
      component: () => {
        prefetch('/api/topology')
        return view()
      },
      meta: { permission: 'topology.read', title: 'topology.menu' },
    },
  ],
  menu: [{ name: 'topology', path: '/topology', label: 'topology.menu',
    permission: 'topology.read', icon: Share }],
  messages: { 'zh-CN': zh, en },
}

export default area
