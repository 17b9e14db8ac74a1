/** The CLI process entry (bin/fuselm.js runs its compiled form): exit code from main(). */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
