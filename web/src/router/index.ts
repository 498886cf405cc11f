// Routes: the login outside the layout, every area's pages inside it (pages/index.ts;
// lazily loaded chunks, so the first screen stays small). A page's meta.permission is checked here as the menu
// checks it (auth/menu.ts): a role without it never reaches the page.
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { useSession } from '@/stores/session'
import { MENU } from '@/auth/menu'
import { AREAS } from '@/pages'
import ConsoleLayout from '@/layouts/ConsoleLayout.vue'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without signing in. */
    public?: boolean
    /** The permission the page needs (auth/roles.ts). */
    permission?: string
    /** The i18n key of the page's title. */
    title?: string
  }
}

export const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('@/views/LoginView.vue'),
    meta: { public: true, title: 'login.title' } },
  {
    path: '/',
    component: ConsoleLayout,
    children: [
      { path: '', name: 'home', component: () => import('@/views/HomeRedirect.vue') },
      ...AREAS.flatMap((area) => area.routes),
      { path: ':rest(.*)*', name: 'not-found',
        component: () => import('@/views/NotFoundView.vue'),
        meta: { title: 'notFound.title' } },
    ],
  },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  const session = useSession()
  const user = await session.load()
  if (!user || !session.ready) {
    return { name: 'login', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  }
  if (to.meta.permission && !session.can(to.meta.permission)) {
    return { name: 'not-found', params: { rest: to.path.slice(1).split('/') } }
  }
  return true
})

/** The first page the user may open (the home route sends them there). */
export function firstPage(can: (permission: string) => boolean): string | null {
  return MENU.find((entry) => can(entry.permission))?.path ?? null
}
