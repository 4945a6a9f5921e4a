import { defineConfig } from 'vite'

// JSX compiles to Preact's automatic runtime; the build goes to dist/,
// which web/embed.go embeds. No request leaves the machine: no CDN, no
// web fonts (the system font stack in style.css).
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: false, assetsDir: 'assets', sourcemap: false },
})
