import { z } from 'zod';
import { LIMITS } from '../limits';
import { bool, int, obj, str, strList, strMap, strSlice } from '../validate';
import { consoleSize, endpointSettings, envList, labels, resources, RESOURCE_HINTS, restartPolicy, type BodySpec } from './common';

/** The JSON bodies berth takes besides container create (schemas/create-body.ts). */

export const EXEC_CREATE_BODY: BodySpec = {
  schema: obj({
    Cmd: strSlice(),
    Env: envList,
    WorkingDir: str(LIMITS.pathBytes),
    User: str(),
    Tty: bool,
    AttachStdin: bool,
    AttachStdout: bool,
    AttachStderr: bool,
    Privileged: bool,
    ConsoleSize: consoleSize,
    DetachKeys: str(64),
  }),
  what: 'exec create body',
  hints: {
    Cmd: 'give the command as a list of strings, e.g. ["sh", "-c", "echo hi"]',
    Env: `give Env as ["KEY=value", ...], at most ${LIMITS.envCount} variables`,
    ConsoleSize: 'give [height, width]',
    DetachKeys: 'e.g. "ctrl-p,ctrl-q"',
  },
};

export const EXEC_START_BODY: BodySpec = {
  schema: obj({ Detach: bool, Tty: bool, ConsoleSize: consoleSize }),
  what: 'exec start body',
  hints: { ConsoleSize: 'give [height, width]' },
};

export const UPDATE_BODY: BodySpec = {
  schema: obj({ ...resources, RestartPolicy: restartPolicy }),
  what: 'container update body',
  hints: RESOURCE_HINTS,
};

export const NETWORK_CREATE_BODY: BodySpec = {
  schema: obj({
    Name: str(256),
    CheckDuplicate: bool,
    Driver: str(64),
    Scope: str(32),
    Internal: bool,
    Attachable: bool,
    Ingress: bool,
    ConfigOnly: bool,
    ConfigFrom: obj({ Network: str(256) }),
    EnableIPv6: bool,
    IPAM: obj({
      Driver: str(64),
      Config: z.array(obj({ Subnet: str(64), IPRange: str(64), Gateway: str(64), AuxiliaryAddresses: strMap(256, 256, 64) })).max(64),
      Options: strMap(64),
    }),
    Options: strMap(64),
    Labels: labels,
  }),
  what: 'network create body',
  hints: {
    Name: 'give the network a name, e.g. {"Name": "backend"}',
    IPAM: 'e.g. "IPAM": {"Config": [{"Subnet": "10.10.0.0/24", "Gateway": "10.10.0.1"}]}',
    Labels: 'give Labels as an object of strings',
    Options: 'give Options as an object of strings',
  },
};

export const NETWORK_CONNECT_BODY: BodySpec = {
  schema: obj({ Container: str(256), EndpointConfig: endpointSettings }),
  what: 'network connect body',
  hints: { Container: 'name the container: {"Container": "web"}', EndpointConfig: 'e.g. {"Aliases": ["db"], "IPAMConfig": {"IPv4Address": "10.10.0.5"}}' },
};

export const NETWORK_DISCONNECT_BODY: BodySpec = {
  schema: obj({ Container: str(256), Force: bool }),
  what: 'network disconnect body',
  hints: { Container: 'name the container: {"Container": "web"}' },
};

export const VOLUME_CREATE_BODY: BodySpec = {
  schema: obj({ Name: str(256), Driver: str(64), DriverOpts: strMap(64), Labels: labels }),
  what: 'volume create body',
  hints: { DriverOpts: 'give options as an object of strings, e.g. {"size": "10G"}', Labels: 'give Labels as an object of strings' },
};

/** berth's own /berth/v1 image bodies. */
export const IMAGE_VENDOR_BODY: BodySpec = {
  schema: obj({ ref: str(), binaries: strList(LIMITS.listCount, LIMITS.pathBytes), cmd: strList(), entrypoint: strList() }),
  what: 'image vendor body',
  hints: {},
};

export const IMAGE_BOOTSTRAP_BODY: BodySpec = {
  schema: obj({ ref: str(), mirror: str() }),
  what: 'image bootstrap body',
  hints: {},
};



/** POST /auth: Docker's AuthConfig (credentials are never echoed in an error: only the field's path is). */
export const AUTH_BODY: BodySpec = {
  schema: obj({
    username: str(),
    password: str(64 << 10),
    auth: str(64 << 10),
    email: str(),
    serveraddress: str(),
    identitytoken: str(64 << 10),
    registrytoken: str(64 << 10),
  }),
  what: 'auth body',
  hints: { serveraddress: 'e.g. {"serveraddress": "registry.example.com", "username": "me", "password": "..."}' },
};

/** PUT /berth/v1/volumes/{name}/schedule (berth's own: unknown members are refused, not passed over). */
export const VOLUME_SCHEDULE_BODY: BodySpec = {
  schema: z.strictObject({
    Every: str(64),
    Keep: int(),
    KeepDaily: int().nullish(),
    Pre: str(4096).nullish(),
    Post: str(4096).nullish(),
    Push: str(LIMITS.shortString).nullish(),
  }),
  what: 'volume schedule body',
  hints: {
    Every: 'give the interval as a Go duration, e.g. {"Every": "15m", "Keep": 24}',
    Keep: 'give how many of its newest snapshots the schedule keeps, e.g. {"Every": "15m", "Keep": 24}',
    KeepDaily: 'give how many days keep their newest snapshot, e.g. "KeepDaily": 7',
    Pre: 'give a shell command, run in the containers that use the volume before each snapshot',
    Post: 'give a shell command, run in those containers after each snapshot',
  },
};
