// The console's topology (issue 17): sites → systems → repositories, offsite copies and
// standbys with each link's live state and lag; ECharts only in this area's lazy chunk.
import { Share } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'topology',
  routes: [
    { path: 'topology', name: 'topology', component: () => import('./TopologyView.vue'),
      meta: { permission: 'topology.read', title: 'topology.menu' } },
  ],
  menu: [{ name: 'topology', path: '/topology', label: 'topology.menu',
    permission: 'topology.read', icon: Share }],
  messages: { 'zh-CN': zh, en },
}

export default area
