/**
 * Text for perplexity on stories260K (the one trained model in ../shared): stories the model
 * itself writes from "Once upon a time" at temperature 0.8, seeds 1, 2, … (reproducible),
 * until the text has `chars` characters.
 */
import type { Model } from '../../lib/model/model.js';

export async function sampledStories(model: Model, chars: number, tokensPerStory = 300): Promise<string> {
  let text = '';
  for (let seed = 1; text.length < chars; seed++) text += (await model.generate('Once upon a time', { maxTokens: tokensPerStory, temperature: 0.8, seed })).text + '\n';
  return text;
}
