import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The dashboard is served by hookmesh under /ui/. `npm run dev` serves it
// on :5173 and proxies the API to the hookmesh of `make run`.
export default defineConfig({
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    port: 5173,
    proxy: {
      "/hookmesh.": "http://127.0.0.1:8080",
    },
  },
});
