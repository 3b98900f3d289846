// Builds the operator's console (served by the gateway at /console) into console/dist/.
// Everything it needs (mpegts.js, hls.js, JSMpeg) is bundled: no CDN.
import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  base: "/console/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    sourcemap: false,
  },
});
