/** The text a person reads first: compact tables, per-node errors, never a JSON dump. */
import { describe, expect, it } from 'vitest';
import { table } from '../../connector/text-table.js';
import { formatAnswers } from '../../connector/tool-bindings.js';
import { McpError } from '../../core/errors.js';
import {
  DesiredState,
  ListServicesResponse,
  ObservedState,
  RemoveServiceResponse,
  ServiceLogsResponse,
  StopServiceResponse,
  SyncDesiredStateToolOutput,
} from '../../gen/mcp/v1/mcp.js';

describe('result text', () => {
  it('pads columns and trims line ends', () => {
    expect(
      table(
        ['a', 'bb'],
        [
          ['xyz', ''],
          ['1', '2'],
        ],
      ),
    ).toBe('a    bb\nxyz\n1    2');
  });

  it('lists services of every node in one table, then the nodes that failed', () => {
    const node1 = ListServicesResponse.fromPartial({
      services: [
        {
          name: 'web',
          active: true,
          components: [
            {
              name: 'app',
              version: 'v1',
              desiredState: DesiredState.DESIRED_STATE_RUNNING,
              observedState: ObservedState.OBSERVED_STATE_RUNNING,
            },
            {
              name: 'db',
              version: '',
              desiredState: DesiredState.DESIRED_STATE_STOPPED,
              observedState: ObservedState.OBSERVED_STATE_EXITED,
            },
          ],
        },
      ],
    });
    const text = formatAnswers(
      'list_services',
      [
        { node: 'node1', response: node1 },
        {
          node: 'node2',
          error: new McpError(
            'UNAVAILABLE',
            'agent node2 at 127.0.0.1:7443 is not answering: connect ECONNREFUSED',
          ),
        },
      ],
      [],
    );
    expect(text).toBe(
      [
        'node   service  component  desired  observed  version',
        'node1  web      app        running  running   v1',
        'node1  web      db         stopped  exited    -',
        'node2: UNAVAILABLE: agent node2 at 127.0.0.1:7443 is not answering: connect ECONNREFUSED',
      ].join('\n'),
    );
  });

  it('summarises a lifecycle result and shows what failed', () => {
    const stopped = StopServiceResponse.fromPartial({
      service: 'web',
      replayed: true,
      components: [
        {
          component: 'app',
          ok: true,
          desiredState: DesiredState.DESIRED_STATE_STOPPED,
          observedState: ObservedState.OBSERVED_STATE_EXITED,
          version: 'v1',
          container: 'web-app',
        },
        {
          component: 'db',
          ok: false,
          error: 'podman stop web-db: exit 125: no such container',
          container: 'web-db',
        },
      ],
    });
    const text = formatAnswers(
      'stop_service',
      [{ node: 'node1', response: stopped }],
      ['/svc/web.toml: active = false'],
    );
    expect(text.split('\n')).toEqual([
      'web on node1: stopped 1 of 2 components (replayed: the first result of this requestId; nothing was done now)',
      'component  ok   desired  observed  version  container',
      'app        yes  stopped  exited    v1       web-app',
      'db         NO   -        -         -        web-db',
      'db: podman stop web-db: exit 125: no such container',
      '/svc/web.toml: active = false',
    ]);
  });

  it('lists strays apart, per node, and a node that was not synced', () => {
    const output = SyncDesiredStateToolOutput.fromPartial({
      services: [{ service: 'web', change: 'created', details: [] }],
      ignored: ['other/other'],
      byNode: [
        { node: 'node1', services: ['web'], ignored: ['other/other'] },
        { node: 'node2', error: 'UNAVAILABLE: agent node2 did not answer' },
      ],
    });
    expect(
      formatAnswers('sync_desired_state', [{ node: 'node1, node2', response: output }], []).split('\n'),
    ).toEqual([
      'synced on node1',
      'service  change   details',
      'web      created  -',
      'node1: marked ignore (match no definition; remove_service forgets one): other/other',
      'node2: not synced: UNAVAILABLE: agent node2 did not answer',
    ]);
  });

  it('says what a removal did to each container and which files went', () => {
    const removed = RemoveServiceResponse.fromPartial({
      service: 'ghost',
      components: [{ component: 'app', container: 'ghost-app', outcome: 'absent' }],
      filesRemoved: '/srv/ghost/',
    });
    expect(formatAnswers('remove_service', [{ node: 'node1', response: removed }], []).split('\n')).toEqual([
      'ghost removed from node1',
      'component  container  container was',
      'app        ghost-app  absent',
      'deleted /srv/ghost/',
    ]);
  });

  it('shows logs per component and states a cut', () => {
    const logs = ServiceLogsResponse.fromPartial({
      service: 'web',
      truncated: true,
      components: [
        { component: 'app', container: 'web-app', text: 'a\nb\n', truncated: true, bytesDropped: 10 },
        {
          component: 'db',
          container: 'web-db',
          error: 'no container web-db: deploy or start_service runs it',
        },
      ],
    });
    expect(formatAnswers('service_logs', [{ node: 'node1', response: logs }], []).split('\n')).toEqual([
      '--- web/app (web-app) on node1',
      '[truncated: 10 bytes of older lines left out; raise `maxBytes` or lower `tail`]',
      'a',
      'b',
      '--- web/db (web-db) on node1',
      'no container web-db: deploy or start_service runs it',
    ]);
  });
});
