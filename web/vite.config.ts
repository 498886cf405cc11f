/// <reference types="vitest/config" />
// The console's build: Element Plus components and their styles are imported on demand
// (unplugin-vue-components, unplugin-auto-import), so the first screen carries only what
// it uses; pages are lazy route chunks. The output goes into the Python package, where
// `medark server` serves it at / (src/medark/server/console.py, docs/console.md).
import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import AutoImport from 'unplugin-auto-import/vite'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

const outDir = fileURLToPath(new URL('../src/medark/server/console', import.meta.url))

export default defineConfig({
  plugins: [
    vue(),
    AutoImport({
      resolvers: [ElementPlusResolver()],
      dts: 'src/types/auto-imports.d.ts',
    }),
    Components({
      resolvers: [ElementPlusResolver()],
      dts: 'src/types/components.d.ts',
    }),
  ],
  define: {
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: 'assets',
    chunkSizeWarningLimit: 800,
    reportCompressedSize: true,
    rollupOptions: {
      output: {
        // Vue, the router, pinia and vue-i18n change rarely: one cached chunk
        manualChunks: (id: string) =>
          /node_modules\/(@vue|vue|vue-router|pinia|vue-i18n|@intlify)\//.test(id)
            ? 'vue'
            : undefined,
      },
    },
  },
  server: {
    // `npm run dev`: the API of a local `medark server` (MEDARK_SERVER, default 8443)
    proxy: { '/api': process.env.MEDARK_SERVER ?? 'http://127.0.0.1:8443' },
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.test.ts'],
    // Element Plus's per-component CSS imports go through Vite, not Node
    server: { deps: { inline: ['element-plus'] } },
  },
})
