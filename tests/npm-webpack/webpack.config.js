// webpack 5 with WebAssembly ES-module integration, which `waymark/bundler`
// (wasm-pack's `--target bundler` build) needs. tests/npm.rs runs
// `webpack` in a copy of this folder and serves the folder: `index.html` loads
// `dist/main.js`, which fetches its `.wasm` from beside itself.
const path = require('path');

module.exports = {
  mode: 'production',
  entry: './src/index.js',
  output: {
    path: path.resolve(__dirname, 'dist'),
    filename: 'main.js',
    clean: true,
  },
  experiments: { asyncWebAssembly: true },
  performance: { hints: false },
};
