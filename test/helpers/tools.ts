/**
 * Function tools for the tool-call tests: arguments with finite languages (string limits, enums,
 * integer ranges), so that a constrained call always completes, and one without parameters.
 */
import type { ToolDefinition } from '../../lib/chat-tools.js';

export const TOOLS: ToolDefinition[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['celsius', 'fahrenheit'] } },
        required: ['city'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'add',
      parameters: { type: 'object', properties: { a: { type: 'integer', minimum: -100, maximum: 100 }, b: { type: 'integer', minimum: -100, maximum: 100 } }, required: ['a', 'b'] },
    },
  },
  { type: 'function', function: { name: 'now', description: 'The time now' } },
];
