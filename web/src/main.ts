import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { api } from './api/client'
import { useSession } from './stores/session'
import './styles/base.css'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia).use(i18n).use(router)

// a session that ended (idle timeout, signed out elsewhere): back to the login
api.onUnauthenticated = (error) => {
  useSession(pinia).forget()
  const here = router.currentRoute.value
  if (!here.meta.public) {
    void router.push({ name: 'login', query: { redirect: here.fullPath, reason: error.code } })
  }
}

document.documentElement.lang = i18n.global.locale.value
app.mount('#app')
