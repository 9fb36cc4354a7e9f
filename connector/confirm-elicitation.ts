/**
 * Confirmations over MCP (connector/confirm.ts has the decision). The question is an
 * `input_required` result (protocol 2026-07-28); the SDK's legacy shim sends it as an
 * `elicitation/create` request to 2025-era clients and re-enters the handler with the answer,
 * so one code path serves both eras. The state kept between the question and the answer
 * (tool, arguments, plan digest, questions asked) is sealed with an HMAC key that lives as
 * long as this process.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  acceptedContent,
  createRequestStateCodec,
  type InputRequiredResult,
  inputRequired,
  inputResponse,
  type RequestStateCodec,
  type ServerContext,
} from '@modelcontextprotocol/server';
import { confirmationText } from '../core/plans.js';
import type { ToolName } from '../tools.generated.js';
import {
  CONNECTOR_ASKER,
  type ConfirmSettings,
  cannotAsk,
  declined,
  type ExecuteCall,
  isStale,
  keptChanging,
  MAX_QUESTIONS,
  needsQuestion,
  PLANNED_TOOLS,
  planless,
  plannedOf,
  planText,
  withoutDigest,
} from './confirm.js';
import type { RoutedCall, ToolArguments } from './routing.js';

/** What the connector keeps between its question and the client's answer (sealed, echoed by the client). */
interface QuestionState {
  tool: string;
  /** SHA-256 of the call's arguments: an answer applies to the call it was asked for. */
  args: string;
  digest: string;
  asked: number;
}

const CONFIRM_KEY = 'confirm';
const CONFIRM_SCHEMA = {
  type: 'object' as const,
  properties: {
    confirm: {
      type: 'boolean' as const,
      title: 'Apply this plan',
      description: 'Yes runs exactly the plan shown.',
    },
  },
  required: ['confirm'],
};

function argsKey(tool: string, args: ToolArguments): string {
  return createHash('sha256')
    .update(JSON.stringify([tool, Object.entries(args).sort(([a], [b]) => (a < b ? -1 : 1))]))
    .digest('hex');
}

/** The connector's side of confirmations over MCP: one per connector process. */
export class McpConfirmations {
  private readonly codec: RequestStateCodec<QuestionState>;

  constructor(
    private readonly settings: ConfirmSettings,
    private readonly configFile: string,
  ) {
    this.codec = createRequestStateCodec<QuestionState>({ key: randomBytes(32), ttlSeconds: 600 });
  }

  /** For `ServerOptions.requestState.verify`: an echoed state that was not sealed here is refused. */
  get verifyState(): RequestStateCodec<QuestionState>['verify'] {
    return this.codec.verify;
  }

  /**
   * Runs a tool call, with the question first when its plan needs one. Returns the routed call,
   * or the `input_required` result that asks the question (the client answers by calling again).
   */
  async call(
    tool: ToolName,
    rawArgs: ToolArguments,
    ctx: ServerContext,
    clientCanAsk: boolean,
    execute: ExecuteCall,
  ): Promise<RoutedCall | InputRequiredResult> {
    const args = withoutDigest(rawArgs);
    if (!PLANNED_TOOLS.has(tool) || args.dryRun === true || !this.settings.tools.has(tool)) {
      return execute(args);
    }
    const key = argsKey(tool, args);
    const state = ctx.mcpReq.requestState<QuestionState>();
    let asked = 0;
    if (state && state.tool === tool && state.args === key) {
      asked = state.asked;
      const answer = inputResponse(ctx.mcpReq.inputResponses, CONFIRM_KEY);
      const yes =
        answer.kind === 'elicit' &&
        answer.action === 'accept' &&
        acceptedContent(ctx.mcpReq.inputResponses, CONFIRM_KEY)?.confirm === true;
      if (!yes) {
        await execute({ ...args, dryRun: true }, confirmationText('declined', state.digest, CONNECTOR_ASKER));
        throw declined(
          tool,
          answer.kind === 'elicit' && answer.action === 'cancel' ? 'cancelled' : 'declined',
        );
      }
      try {
        return await execute(
          { ...args, planDigest: state.digest },
          confirmationText('accepted', state.digest, CONNECTOR_ASKER),
        );
      } catch (err) {
        if (!isStale(err)) throw err;
        if (asked >= MAX_QUESTIONS) throw keptChanging(tool);
      }
    }
    // Plan (again); a plan that needs no human runs at once, still only as planned.
    for (; asked < MAX_QUESTIONS; ) {
      const planned = plannedOf(await execute({ ...args, dryRun: true }));
      if (!planned?.plan.digest) throw planless(tool);
      const { node, plan } = planned;
      if (needsQuestion(plan)) {
        if (!clientCanAsk) {
          if (this.settings.whenClientCannotAsk === 'allow') return execute(args);
          throw cannotAsk(tool, this.configFile);
        }
        const next: QuestionState = { tool, args: key, digest: plan.digest, asked: asked + 1 };
        const again = asked > 0 ? 'The node changed since the last question; this is the new plan.\n' : '';
        return inputRequired({
          inputRequests: {
            [CONFIRM_KEY]: inputRequired.elicit({
              message: `${again}${planText(tool, node, plan)}\nApply it?`,
              requestedSchema: CONFIRM_SCHEMA,
            }),
          },
          requestState: await this.codec.mint(next, ctx),
        });
      }
      try {
        return await execute({ ...args, planDigest: plan.digest });
      } catch (err) {
        if (!isStale(err)) throw err;
        asked += 1;
      }
    }
    throw keptChanging(tool);
  }
}
