"""The seed article's design, as a baseline for `make bench`.

A FastAPI app served by uvicorn with one worker: tasks kept in a list, and a
connection manager that sends every message to each subscriber in turn,
awaiting each send, from the request that published it. Same paths and wire
texts as Pulseboard, so the load generator drives both the same way.

Run: uvicorn app:app --host 127.0.0.1 --port 4001 --workers 1
"""

from collections import defaultdict
from datetime import datetime, timezone

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

app = FastAPI()


class Task(BaseModel):
    id: int | None = None
    title: str
    description: str | None = None
    created_at: datetime | None = None


class ConnectionManager:
    def __init__(self) -> None:
        self.active: dict[str, list[WebSocket]] = defaultdict(list)

    async def connect(self, topic: str, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active[topic].append(websocket)

    def disconnect(self, topic: str, websocket: WebSocket) -> None:
        if websocket in self.active[topic]:
            self.active[topic].remove(websocket)

    async def broadcast(self, topic: str, message: str) -> None:
        for connection in list(self.active[topic]):
            try:
                await connection.send_text(message)
            except Exception:
                self.disconnect(topic, connection)


manager = ConnectionManager()
tasks: list[Task] = []


@app.get("/healthz")
async def healthz() -> str:
    return "ok"


@app.post("/tasks", status_code=201)
async def create_task(task: Task) -> Task:
    task.id = len(tasks) + 1
    task.created_at = datetime.now(timezone.utc)
    tasks.append(task)
    await manager.broadcast("tasks", f"New task created: {task.title}")
    return task


@app.get("/tasks")
async def list_tasks() -> list[Task]:
    return tasks


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"Message received: {data}")
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/notifications/{topic}")
async def notifications(websocket: WebSocket, topic: str) -> None:
    await manager.connect(topic, websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        manager.disconnect(topic, websocket)


@app.websocket("/ws/{client_id}")
async def chat(websocket: WebSocket, client_id: str) -> None:
    await manager.connect("chat", websocket)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast("chat", f"Client {client_id}: {data}")
    except WebSocketDisconnect:
        manager.disconnect("chat", websocket)
        await manager.broadcast("chat", f"Client {client_id} left the chat")
