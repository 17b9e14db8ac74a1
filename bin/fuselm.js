#!/usr/bin/env node
// The fuselm CLI entry: runs the compiled CLI from dist/ (npm run build:ts makes it).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
