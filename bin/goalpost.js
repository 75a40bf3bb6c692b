#!/usr/bin/env node
// The CLI runs the compiled build (made by `npm ci` through the `prepare` script).
import '../dist/src/cli/index.js'
