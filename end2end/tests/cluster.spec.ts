import { expect, test } from "@playwright/test";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BoardPage, registerUser, unique } from "./board-page";

// Two instances of the binary under test on one Redis (a redis-server of
// this test's own) and one PostgreSQL database, behind `make cluster`'s
// nginx on one port: scripts/cluster.sh, as a user runs it. Each page is
// pinned to one instance with the `pulseboard_instance` cookie.

const root = path.resolve(__dirname, "..", "..");
const freePort = () =>
  Number(
    execFileSync("python3", [
      "-c",
      "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])",
    ])
      .toString()
      .trim(),
  );
const postgres = process.env.E2E_POSTGRES ?? "postgres://postgres@127.0.0.1:5432";
const lbPort = freePort();
const ports = [freePort(), freePort()];
const clusterURL = `http://127.0.0.1:${lbPort}`;
const database = `pb_e2e_${Date.now()}_${process.pid}`;

let redis: ChildProcess | undefined;
let cluster: ChildProcess | undefined;
let work = "";
let clusterLog = "";

test.use({ baseURL: clusterURL });

test.beforeAll(async () => {
  test.setTimeout(60_000);
  work = fs.mkdtempSync(path.join(os.tmpdir(), "pulseboard-cluster-"));
  const redisPort = freePort();
  redis = spawn(
    "redis-server",
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work],
    { stdio: "ignore" },
  );
  cluster = spawn(path.join(root, "scripts", "cluster.sh"), [], {
    cwd: root,
    detached: true,
    env: {
      ...process.env,
      CLUSTER_BIN: path.resolve(root, process.env.E2E_SERVER_BIN ?? "target/debug/pulseboard"),
      CLUSTER_PORT: String(lbPort),
      CLUSTER_PORTS: ports.join(","),
      CLUSTER_WORK: path.join(work, "cluster"),
      CLUSTER_DATABASE: postgres,
      CLUSTER_DB_NAME: database,
      REDIS_URL: `redis://127.0.0.1:${redisPort}/`,
      LEPTOS_ENV: process.env.LEPTOS_ENV ?? "DEV",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the cluster did not start:\n${clusterLog}`)), 50_000);
    const read = (chunk: Buffer) => {
      clusterLog += chunk.toString();
      if (clusterLog.includes("Pulseboard cluster:")) {
        clearTimeout(timer);
        resolve();
      }
    };
    cluster!.stdout!.on("data", read);
    cluster!.stderr!.on("data", read);
    cluster!.on("exit", (code) => reject(new Error(`cluster.sh exited with ${code}:\n${clusterLog}`)));
  });
  await ready;
  // nginx is up once it answers.
  await expect
    .poll(async () => (await fetch(`${clusterURL}/readyz`).catch(() => undefined))?.status, { timeout: 10_000 })
    .toBe(200);
});

test.afterAll(async () => {
  if (cluster?.pid) {
    // The script's process group: the script, both instances and nginx.
    try {
      process.kill(-cluster.pid, "SIGTERM");
    } catch {}
    await new Promise((resolve) => (cluster!.exitCode !== null ? resolve(null) : cluster!.on("exit", resolve)));
  }
  redis?.kill("SIGKILL");
  try {
    execFileSync("psql", [`${postgres}/postgres`, "-qc", `DROP DATABASE IF EXISTS ${database}`]);
  } catch {}
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Open WebSocket connections on the instance listening on `port`. */
async function socketsOn(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("pulseboard_ws_connections "));
  return Number(line?.split(" ")[1] ?? 0);
}

test("two pages on different instances behind the load balancer see each other's changes within 2 s", async ({
  browser,
  request,
}) => {
  const boards: BoardPage[] = [];
  for (const instance of ["1", "2"]) {
    const context = await browser.newContext({ baseURL: clusterURL });
    await context.addCookies([{ name: "pulseboard_instance", value: instance, url: clusterURL }]);
    const board = new BoardPage(await context.newPage());
    const user = await registerUser(request, `lb${instance}`);
    await board.gotoSignedIn(user);
    await expect(board.page.getByTestId("connection")).toHaveAttribute("data-state", "live");
    boards.push(board);
  }
  // Each instance holds one page's socket: the pages are really apart.
  for (const port of ports) {
    await expect.poll(() => socketsOn(port)).toBe(1);
  }
  const [one, two] = boards;
  for (const [writer, watcher] of [
    [one, two],
    [two, one],
  ] as const) {
    const title = unique("Across instances");
    await writer.createTask(title, "through the load balancer");
    await expect(watcher.column("todo")).toContainText(title, { timeout: 2_000 });
    await writer.card(title).getByTestId("move-forward").click();
    await expect(watcher.column("doing")).toContainText(title, { timeout: 2_000 });
  }
});
