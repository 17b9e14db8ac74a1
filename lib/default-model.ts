/**
 * The model the package carries: stories260K.gguf (Karpathy's tinyllamas, MIT; its notice is
 * models/LICENSE.stories260K), about 1.2 MB, so that `loadModel()` and `fuselm run "..."` work
 * with nothing downloaded. It tells children's stories and is for trying fuselm out, not for use.
 */
import { fileURLToPath } from 'node:url';

/** The absolute path of the bundled stories260K.gguf (lib/ and dist/ both sit beside models/). */
export const DEFAULT_MODEL: string = fileURLToPath(new URL('../models/stories260K.gguf', import.meta.url));
