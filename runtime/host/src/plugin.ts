// The link check under its historical path (test/modules.test.ts imports it from here).
export { PluginLoadError, checkModule } from "./vm/link.js";
