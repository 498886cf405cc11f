// The console's dashboard area (issue 17): no page yet, so no route and no menu entry.
import type { PageArea } from '../types'

const area: PageArea = { name: 'dashboard', routes: [], menu: [], messages: { 'zh-CN': {}, en: {} } }

export default area
