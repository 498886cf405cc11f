// The restore area (issue 17): the restore wizard. Browsing snapshots is
// snapshots.read (operators and viewers); starting a restore is restores.run.
import { RefreshLeft } from '@element-plus/icons-vue'
import type { PageArea } from '../types'
import { en, zh } from './messages'

const area: PageArea = {
  name: 'restore',
  routes: [
    { path: 'restore', name: 'restore', component: () => import('./RestoreView.vue'),
      meta: { permission: 'snapshots.read', title: 'restore.title' } },
  ],
  menu: [{ name: 'restore', path: '/restore', label: 'restore.title',
    permission: 'snapshots.read', icon: RefreshLeft }],
  messages: { 'zh-CN': zh, en },
}

export default area
