"""The ``hotline`` command: init, migrate, serve, createuser."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from tortoise import Tortoise

from hotline.settings import Settings


async def with_db(settings: Settings, work):
    from hotline.db import tortoise_config

    await Tortoise.init(config=tortoise_config(settings.database_url))
    try:
        return await work()
    finally:
        await Tortoise.close_connections()


def cmd_migrate(settings: Settings, args) -> int:
    from hotline.db import migrate

    asyncio.run(migrate(settings))
    print("数据库已是最新结构 (database schema is up to date)")
    return 0


def cmd_init(settings: Settings, args) -> int:
    from hotline.db import migrate
    from hotline.demo import load_demo_city

    asyncio.run(migrate(settings))
    print(f"database: {settings.database_url.split('?')[0]}")
    if args.no_demo:
        return 0
    passwords = asyncio.run(with_db(settings, lambda: load_demo_city(settings.region, settings.data_dir)))
    if passwords is None:
        print("演示数据已存在，未重复导入 (demo city already loaded)")
        return 0
    print(f"已导入演示城市（区划 {settings.region}）的单位和以下演示用户，请妥善保存密码：")
    for username, password in passwords.items():
        print(f"  {username:<12} {password}")
    return 0


def cmd_serve(settings: Settings, args) -> int:
    import uvicorn

    from hotline.db import migrate
    from hotline.web.app import create_app

    if settings.is_sqlite:
        # The embedded mode has no release phase: keep its schema current here.
        asyncio.run(migrate(settings))
    if settings.secret_key_is_ephemeral:
        print("注意：未设置 SECRET_KEY，重启后登录会话将失效", file=sys.stderr)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, proxy_headers=True)
    return 0


def cmd_worker(settings: Settings, args) -> int:
    if not settings.redis_url:
        print("错误：未设置 REDIS_URL。没有 Redis 时由 web 进程（hotline serve）执行定时任务，无需单独启动 worker。",
              file=sys.stderr)
        return 2
    from hotline import queue

    if args.check:
        ok = queue.healthy(settings)
        print("worker 正常 (healthy)" if ok else "worker 无响应 (no recent health record)")
        return 0 if ok else 1
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    queue.run(settings)
    return 0


def cmd_createuser(settings: Settings, args) -> int:
    from cases.actors import ROLES
    from cases.models import Unit, User
    from hotline.auth import check_password_strength, hash_password

    if args.role not in ROLES:
        print(f"错误：角色必须是 {', '.join(ROLES)} 之一", file=sys.stderr)
        return 2
    if args.role == "handler" and not args.unit:
        print("错误：承办人员 (handler) 必须用 --unit 指定单位", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass("密码: ")
        if getpass.getpass("再次输入密码: ") != password:
            print("错误：两次输入的密码不一致", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    problem = check_password_strength(password)
    if problem:
        print(f"错误：{problem}", file=sys.stderr)
        return 2

    async def work() -> int:
        if await User.exists(username=args.username):
            print(f"错误：用户 {args.username} 已存在", file=sys.stderr)
            return 1
        unit = None
        if args.unit:
            unit = await (Unit.get_or_none(id=int(args.unit)) if args.unit.isdigit() else Unit.get_or_none(name=args.unit))
            if unit is None:
                print(f"错误：单位 {args.unit} 不存在", file=sys.stderr)
                return 1
        await User.create(
            username=args.username,
            display_name=args.display_name or "",
            role=args.role,
            unit_id=unit.id if unit and args.role == "handler" else None,
            password_hash=hash_password(password),
        )
        print(f"已创建用户 {args.username}（{args.role}）")
        return 0

    return asyncio.run(with_db(settings, work))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hotline", description="12345 热线工单系统")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="migrate the database and load the demo city")
    p.add_argument("--no-demo", action="store_true", help="only migrate")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("serve", help="run the web server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("worker", help="run the background worker (needs REDIS_URL)")
    p.add_argument("--check", action="store_true", help="exit 0 if a worker reported healthy recently")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("createuser", help="create a user (password from the prompt or stdin)")
    p.add_argument("username")
    p.add_argument("--role", required=True)
    p.add_argument("--unit", help="unit id or exact name (handlers)")
    p.add_argument("--display-name")
    p.set_defaults(func=cmd_createuser)
    from hotline.routing_cli import add_parser as add_routing

    add_routing(sub)
    from hotline.partners_cli import add_parser as add_partners

    add_partners(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"配置错误：{exc}", file=sys.stderr)
        return 2
    return args.func(settings, args)


if __name__ == "__main__":
    sys.exit(main())
