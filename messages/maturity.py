"""Every word of the automation-maturity check, in Russian and English, and its three renderings.

The facts (three levels, five questions, what each answer means, the advice per level, the
caveats) come from the article seed/maturity-article.ru.txt; the wording is ours. The
questionnaire and the scoring live in bot.maturity; this module only turns their ids and
records into words, so it reads them by attribute (duck typing) and never imports bot/:
  result: .level, .label ("1"|"2"|"2+"|"3"), .reasons (each .question_id, .option_id),
          .gaps (question ids), .warnings (codes)
  hint:   .question_id, .kind, .facts (bot.maturity.data_hints.DataHint)
Outputs: plain text (terminal, Slack fallback), Telegram HTML (every outside string through
html.escape), Slack Block Kit (every string through messages.escape.slack_escape, the one Slack
escape, in `verbatim` mrkdwn sections so no URL auto-links; headers and fallbacks made inert too).
"""
from __future__ import annotations

import html
from datetime import datetime
from typing import Any, Iterable, Sequence

from messages.escape import plain_safe, slack_escape
from messages.i18n import check_lang, count, day_month, number, percent

QUESTION_ORDER = ("systems", "lead_distribution", "auto_actions", "recommendations", "bots")

# --- the questions -------------------------------------------------------------------------

QUESTIONS: dict[str, dict[str, str]] = {
    "systems": {
        "ru": "Сколько систем приходится открыть менеджеру, чтобы увидеть всю картину по клиенту: "
              "сделки, переписку, звонки, оплаты?",
        "en": "How many systems does a manager have to open to see the whole picture of a client: "
              "deals, messages, calls, payments?",
    },
    "lead_distribution": {
        "ru": "Как новые заявки попадают к менеджерам?",
        "en": "How do new leads reach the managers?",
    },
    "auto_actions": {
        "ru": "Делает ли система что-то сама, без человека: ставит задачи, шлёт напоминания, "
              "передаёт руководителю просроченные сделки?",
        "en": "Does the system do anything on its own, without a person: create tasks, send reminders, "
              "escalate overdue deals to the head of sales?",
    },
    "recommendations": {
        "ru": "Подсказывает ли система, что делать, исходя из данных: какую заявку взять первой, "
              "кому лучше позвонить, а кому написать?",
        "en": "Does the system recommend what to do based on data: which lead to take first, "
              "whom to call rather than write to?",
    },
    "bots": {
        "ru": "Отвечают ли боты на часть обращений клиентов без участия людей?",
        "en": "Do bots handle part of the customer inquiries without people?",
    },
}

# Short names for the "why" list of the result.
TOPICS: dict[str, dict[str, str]] = {
    "systems": {"ru": "Картина по клиенту", "en": "Picture of a client"},
    "lead_distribution": {"ru": "Распределение заявок", "en": "Lead distribution"},
    "auto_actions": {"ru": "Действия без человека", "en": "Actions without a person"},
    "recommendations": {"ru": "Рекомендации из данных", "en": "Recommendations from data"},
    "bots": {"ru": "Боты", "en": "Bots"},
}

# Button labels: short (Slack allows 75 characters, phones show ~30 comfortably).
OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    "systems": {
        "one": {"ru": "Одну", "en": "One"},
        "two": {"ru": "Две", "en": "Two"},
        "three_plus": {"ru": "Три и больше", "en": "Three or more"},
    },
    "lead_distribution": {
        "rules": {"ru": "Автоматически, по правилам", "en": "Automatically, by rules"},
        "manual": {"ru": "Вручную или кто первый взял", "en": "By hand or whoever grabs it first"},
    },
    "auto_actions": {
        "yes": {"ru": "Да, такое есть", "en": "Yes, it does"},
        "stores_only": {"ru": "Нет, только хранит данные", "en": "No, it only stores data"},
    },
    "recommendations": {
        "yes": {"ru": "Да, подсказывает", "en": "Yes, it recommends"},
        "no": {"ru": "Нет", "en": "No"},
    },
    "bots": {
        "yes": {"ru": "Да, часть закрывают боты", "en": "Yes, bots handle some"},
        "no": {"ru": "Нет, отвечают только люди", "en": "No, only people answer"},
    },
}

# Each answer as a sentence about the company, for the result's "why" list. Button labels are
# short replies to a question ("Одну", "Two") and do not read on their own.
ANSWERS: dict[str, dict[str, dict[str, str]]] = {
    "systems": {
        "one": {"ru": "Всю картину по клиенту менеджер видит в одной системе.",
                "en": "A manager sees the whole picture of a client in one system."},
        "two": {"ru": "Чтобы увидеть всю картину по клиенту, менеджер открывает две системы.",
                "en": "A manager opens two systems to see the whole picture of a client."},
        "three_plus": {"ru": "Чтобы увидеть всю картину по клиенту, менеджер открывает три системы или больше.",
                       "en": "A manager opens three or more systems to see the whole picture of a client."},
    },
    "lead_distribution": {
        "rules": {"ru": "Новые заявки распределяются автоматически, по правилам.",
                  "en": "New leads are distributed automatically, by rules."},
        "manual": {"ru": "Новые заявки распределяют вручную, или их берёт тот, кто успел первым.",
                   "en": "New leads are handed out by hand, or whoever grabs one first takes it."},
    },
    "auto_actions": {
        "yes": {"ru": "Система сама ставит задачи, шлёт напоминания или передаёт руководителю просроченные сделки.",
                "en": "The system creates tasks, sends reminders or escalates overdue deals on its own."},
        "stores_only": {"ru": "Система только хранит данные, всё остальное делают люди.",
                        "en": "The system only stores data; people do everything else."},
    },
    "recommendations": {
        "yes": {"ru": "Система подсказывает по данным, что делать: какую заявку взять первой, кому позвонить.",
                "en": "The system recommends from data what to do: which lead to take first, whom to call."},
        "no": {"ru": "Система не подсказывает, что делать, исходя из данных.",
               "en": "The system does not recommend what to do based on data."},
    },
    "bots": {
        "yes": {"ru": "Часть обращений клиентов закрывают боты, без людей.",
                "en": "Bots handle part of the customer inquiries without people."},
        "no": {"ru": "На все обращения клиентов отвечают люди.",
               "en": "People answer every customer inquiry."},
    },
}

# What each answer says about the level (the article's "what each answer means").
MEANINGS: dict[str, dict[str, dict[str, str]]] = {
    "systems": {
        "one": {"ru": "одно окно на клиента — признак второго уровня: системы связаны, "
                      "собирать данные по кусочкам не нужно.",
                "en": "one window per client is a level 2 sign: the systems are connected and nobody "
                      "stitches data together by hand."},
        "two": {"ru": "промежуточное состояние: картина уже не разбросана по трём местам, но ещё не "
                      "собрана в одну карточку. Сам по себе этот ответ уровень не определяет.",
                "en": "in between: the picture is no longer spread over three places, but not yet in one "
                      "client card. On its own this answer does not decide the level."},
        "three_plus": {"ru": "типичная картина первого уровня: данные о клиенте разбросаны, люди тратят "
                             "время, чтобы их сшить.",
                       "en": "the typical picture of level 1: client data is scattered and people spend "
                             "time stitching it together."},
    },
    "lead_distribution": {
        "rules": {"ru": "распределение по правилам — второй уровень или выше.",
                  "en": "distribution by rules means level 2 or higher."},
        "manual": {"ru": "ручное распределение или «кто первый взял» — признак первого уровня.",
                   "en": "distribution by hand or first come, first served is a level 1 sign."},
    },
    "auto_actions": {
        "yes": {"ru": "система сама делает то, что раньше делали люди, — это второй уровень.",
                "en": "the system does what people used to do: that is level 2."},
        "stores_only": {"ru": "если система только хранит данные, это первый уровень: вся работа "
                              "по-прежнему на людях.",
                        "en": "a system that only stores data is level 1: all the work is still done "
                              "by people."},
    },
    "recommendations": {
        "yes": {"ru": "советы на основе данных — признак третьего уровня.",
                "en": "advice drawn from data is a level 3 sign."},
        "no": {"ru": "без рекомендаций из данных — второй уровень или ниже.",
               "en": "without recommendations from data it is level 2 or lower."},
    },
    "bots": {
        "yes": {"ru": "боты, которые закрывают часть обращений, — элемент третьего уровня.",
                "en": "bots that handle part of the inquiries are an element of level 3."},
        "no": {"ru": "когда всем отвечают люди, это второй или первый уровень.",
               "en": "when people answer everything, it is level 2 or 1."},
    },
}

# --- levels and advice -----------------------------------------------------------------------

LEVEL_NAMES: dict[str, dict[str, str]] = {
    "1": {"ru": "Уровень 1: разрозненные инструменты", "en": "Level 1: scattered tools"},
    "2": {"ru": "Уровень 2: связанные системы и правила", "en": "Level 2: connected systems and rules"},
    "2+": {"ru": "Уровень 2 с элементами уровня 3", "en": "Level 2 with elements of level 3"},
    "3": {"ru": "Уровень 3: система учится и подсказывает", "en": "Level 3: the system learns and advises"},
}

LEVEL_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "1": {
        "ru": "Инструменты есть, но каждый живёт сам по себе: CRM, учёт, почта, чаты и телефония не "
              "связаны. Одни и те же данные вводятся по нескольку раз, отчёты собираются вручную. "
              "Главная беда не в нехватке программ, а в том, что между ними нет связей.",
        "en": "The tools are there, but each lives on its own: CRM, accounting, email, chats and telephony "
              "are not connected. The same data is typed in several times and reports are put together "
              "by hand. The problem is not a lack of software but the missing links between it.",
    },
    "2": {
        "ru": "Системы связаны: менеджер видит клиента в одном окне, заявки распределяются по правилам, "
              "система сама ставит задачи и следит за сроками. Это уже ощутимый эффект: меньше ручной "
              "работы и ошибок, быстрее ответ клиенту. Но правила пишут люди: система делает, что "
              "сказано, и не учится.",
        "en": "The systems are connected: a manager sees a client in one window, leads are distributed by "
              "rules, the system creates tasks and watches deadlines itself. That already pays off: less "
              "manual work, fewer mistakes, faster answers. But people write the rules: the system does "
              "what it is told and does not learn.",
    },
    "2+": {
        "ru": "Фундамент второго уровня на месте: системы связаны, работают правила и автоматические "
              "действия. Кое-где уже появились элементы третьего уровня: подсказки из данных или боты. "
              "Полный третий уровень — когда система учится на данных в нескольких процессах сразу.",
        "en": "The level 2 foundation is in place: connected systems, rules and automatic actions. Here "
              "and there level 3 elements have appeared: advice from data or bots. Full level 3 is when "
              "the system learns from data in several processes at once.",
    },
    "3": {
        "ru": "Система не только выполняет правила, но и учится на данных: подсказывает, с кем работать "
              "в первую очередь, отвечает клиентам ботами, сама замечает проблемы. Решают по-прежнему "
              "люди, но быстрее и точнее.",
        "en": "The system does not just follow rules, it learns from data: it suggests whom to work with "
              "first, answers customers with bots and spots problems on its own. People still decide, "
              "only faster and better informed.",
    },
}

NEXT_STEPS: dict[int, dict[str, list[str]]] = {
    1: {
        "ru": [
            "Назначьте один «источник правды» для каждого типа данных: где живёт карточка клиента, "
            "где статус сделки, где деньги. Одно и то же не должно храниться в трёх местах по-разному.",
            "Свяжите системы: звонки и чаты попадают в CRM, учёт синхронизируется с CRM. Готовая "
            "интеграция, API или робот — неважно, главное, чтобы данные шли сами.",
            "Договоритесь о едином процессе (когда заводится сделка, что значит каждый этап) и зашейте "
            "его в систему. За AI и ботами пока не бегите: на разрозненных данных они дают мусорные советы.",
        ],
        "en": [
            "Pick one source of truth for each kind of data: where the client card lives, where the deal "
            "status lives, where the money is. The same thing must not be kept in three places, each a "
            "little different.",
            "Connect the systems: calls and chats flow into the CRM, accounting syncs with the CRM. A "
            "ready-made integration, an API or a robot, it does not matter, as long as data flows by itself.",
            "Agree on one process (when a deal is created, what each stage means) and encode it in the "
            "system. Do not chase AI and bots yet: on scattered data they give junk advice.",
        ],
    },
    2: {
        "ru": [
            "Найдите место, где правила слишком грубые или решения принимают «на глазок», хотя данные "
            "могли бы подсказать.",
            "Запустите один пилот, а не «AI везде»: например, скоринг лидов или подсказку следующего "
            "шага по сделке. Доведите до результата, научите команду, потом расширяйте.",
            "Готовьте данные: для обучения нужны тысячи закрытых сделок, честно заполненные причины "
            "отказов и поля без пропусков.",
        ],
        "en": [
            "Find where the rules are too crude or decisions are made by gut feeling although the data "
            "could help.",
            "Run one pilot, not \"AI everywhere\": for example lead scoring or a next-best-action hint. "
            "Get it to a result, train the team, then widen.",
            "Prepare the data: learning needs thousands of closed deals, honestly filled loss reasons "
            "and fields without gaps.",
        ],
    },
    3: {
        "ru": [
            "Расширяйте: какие ещё процессы можно сделать умнее — прогноз продаж, отток, ответы на "
            "типовые вопросы?",
            "Связывайте: подсказки, боты и прогнозы должны работать вместе, а не отдельными островами.",
            "Измеряйте бизнес-эффект каждого сценария, а не сам факт внедрения: теперь задача — "
            "оптимизировать и масштабировать.",
        ],
        "en": [
            "Widen: which other processes could be made smarter: sales forecast, churn, answers to "
            "routine questions?",
            "Connect: recommendations, bots and forecasts should work together, not as separate islands.",
            "Measure the business effect of each scenario, not the fact of rollout: the job now is to "
            "optimise and scale.",
        ],
    },
}

GAPS: dict[str, dict[str, str]] = {
    "systems": {"ru": "Данные о клиенте всё ещё разбросаны по трём и более системам: соберите их в одну "
                      "карточку, это первое, что стоит доделать.",
                "en": "Client data is still spread over three or more systems: bring it into one client "
                      "card first."},
    "lead_distribution": {"ru": "Заявки распределяются вручную: настройте правила распределения, без них "
                                "второй уровень неполный.",
                          "en": "Leads are distributed by hand: set up distribution rules, level 2 is "
                                "incomplete without them."},
    "auto_actions": {"ru": "Система только хранит данные: настройте хотя бы базовые автоматические действия "
                           "(задачи, напоминания, эскалации).",
                     "en": "The system only stores data: set up at least the basic automatic actions "
                           "(tasks, reminders, escalations)."},
}

# The service department's own words where the sales ones speak of leads, deals and managers
# (`crm-pulse diagnose --department service`, `/maturity service`). The answers, what they mean,
# the levels and the advice are the same: the article's point is that a company can be at level
# 2 in sales and at level 1 in service, measured by the same five questions.
BY_DEPARTMENT: dict[str, dict[str, dict[str, dict[str, str]]]] = {
    "service": {
        "questions": {
            "systems": {
                "ru": "Сколько систем приходится открыть сотруднику сервиса, чтобы увидеть всю картину по "
                      "клиенту: обращения, переписку, звонки, покупки?",
                "en": "How many systems does a service agent have to open to see the whole picture of a "
                      "customer: requests, messages, calls, purchases?",
            },
            "lead_distribution": {
                "ru": "Как новые обращения клиентов попадают к сотрудникам сервиса?",
                "en": "How do new customer requests reach the service agents?",
            },
            "auto_actions": {
                "ru": "Делает ли система что-то сама, без человека: ставит задачи, шлёт напоминания, "
                      "передаёт руководителю просроченные обращения?",
                "en": "Does the system do anything on its own, without a person: create tasks, send reminders, "
                      "escalate overdue requests to the head of service?",
            },
            "recommendations": {
                "ru": "Подсказывает ли система, что делать, исходя из данных: какое обращение взять первым, "
                      "какой ответ подойдёт, какому клиенту грозит уход?",
                "en": "Does the system recommend what to do based on data: which request to take first, "
                      "which answer fits, which customer is about to leave?",
            },
        },
        "topics": {
            "lead_distribution": {"ru": "Распределение обращений", "en": "Request routing"},
        },
        "answers": {  # question.option: what the result repeats of an answer
            "systems.one": {"ru": "Всю картину по клиенту сотрудник сервиса видит в одной системе.",
                            "en": "A service agent sees the whole picture of a customer in one system."},
            "systems.two": {"ru": "Чтобы увидеть всю картину по клиенту, сотрудник сервиса открывает две системы.",
                            "en": "A service agent opens two systems to see the whole picture of a customer."},
            "systems.three_plus": {"ru": "Чтобы увидеть всю картину по клиенту, сотрудник сервиса открывает три "
                                         "системы или больше.",
                                   "en": "A service agent opens three or more systems to see the whole picture "
                                         "of a customer."},
            "lead_distribution.rules": {"ru": "Новые обращения распределяются автоматически, по правилам.",
                                        "en": "New requests are routed automatically, by rules."},
            "lead_distribution.manual": {"ru": "Новые обращения распределяют вручную, или их берёт тот, кто "
                                               "успел первым.",
                                         "en": "New requests are routed by hand, or whoever grabs one first takes it."},
            "auto_actions.yes": {"ru": "Система сама ставит задачи, шлёт напоминания или передаёт руководителю "
                                       "просроченные обращения.",
                                 "en": "The system creates tasks, sends reminders or escalates overdue requests "
                                       "on its own."},
            "recommendations.yes": {"ru": "Система подсказывает по данным, что делать: какое обращение взять "
                                          "первым, какому клиенту грозит уход.",
                                    "en": "The system recommends from data what to do: which request to take "
                                          "first, which customer is about to leave."},
        },
        "gaps": {
            "lead_distribution": {"ru": "Обращения распределяются вручную: настройте правила распределения, "
                                        "без них второй уровень неполный.",
                                  "en": "Requests are routed by hand: set up routing rules, level 2 is "
                                        "incomplete without them."},
        },
    },
}

WARNINGS: dict[str, dict[str, str]] = {
    "ai_before_foundation": {
        "ru": "Вы отметили рекомендации или ботов, но фундамент пока первого уровня. AI на разрозненных "
              "данных даёт мусорные советы: уровни не перепрыгивают, сначала порядок в данных и связи "
              "между системами.",
        "en": "You mentioned recommendations or bots, but the foundation is still level 1. AI on scattered "
              "data gives junk advice: levels cannot be skipped, so put the data in order and connect the "
              "systems first.",
    },
}

CAVEATS: dict[str, list[str]] = {
    "ru": [
        "Уровень — это описание того, как всё устроено сейчас, а не оценка «хорошо» или «плохо». Многие "
        "успешные компании работают на втором уровне, и третий нужен не всем.",
        "Пять вопросов дают общее представление, жизнь сложнее: компания может быть на втором уровне в "
        "продажах и на первом в сервисе. Проверку можно пройти отдельно для каждого направления: {how}.",
        "Уровни не перепрыгивают: переход с первого на второй — это три–шесть месяцев последовательной "
        "работы, а не один большой проект.",
    ],
    "en": [
        "A level describes how things work today; it is not a grade. Plenty of successful companies work "
        "at level 2, and not everyone needs level 3.",
        "Five questions give a rough picture; reality is more complex: a company can be at level 2 in "
        "sales and at level 1 in service. You can run the check for each department separately: {how}.",
        "Levels cannot be skipped: moving from level 1 to level 2 takes three to six months of steady "
        "work, not one big-bang project.",
    ],
}

DEPARTMENTS: dict[str, dict[str, str]] = {
    "sales": {"ru": "продажи", "en": "sales"},
    "service": {"ru": "сервис", "en": "service"},
}

UI: dict[str, dict[str, str]] = {
    "title": {"ru": "Проверка зрелости автоматизации", "en": "Automation maturity check"},
    "intro": {"ru": "Пять вопросов, около двух минут. Отвечайте, как устроено сейчас, а не как хотелось бы. "
                    "Прервать — /cancel.",
              "en": "Five questions, about two minutes. Answer how things work today, not how you would "
                    "like them to. To stop: /cancel."},
    "intro_terminal": {"ru": "Пять вопросов, около двух минут. Отвечайте, как устроено сейчас, а не как хотелось "
                             "бы. Ответ — номер варианта; b — назад, q — выйти.",
                       "en": "Five questions, about two minutes. Answer how things work today, not how you would "
                             "like them to. Answer with the option's number; b = back, q = quit."},
    "question_no": {"ru": "Вопрос {n} из {total}", "en": "Question {n} of {total}"},
    "back": {"ru": "« Назад", "en": "« Back"},
    "cancel": {"ru": "Отменить", "en": "Cancel"},
    "reminder": {"ru": "Пожалуйста, выберите ответ кнопкой под вопросом или отправьте номер варианта: {options}. "
                       "Прервать проверку — /cancel.",
                 "en": "Please choose an answer with a button under the question, or send the option number: "
                       "{options}. To stop the check: /cancel."},
    "cancelled": {"ru": "Проверка прервана, ответы не сохранены. Начать заново — /maturity.",
                  "en": "The check is stopped and the answers are not saved. To start again: /maturity."},
    "nothing_to_cancel": {"ru": "Сейчас нечего отменять. Проверка зрелости — /maturity.",
                          "en": "There is nothing to cancel. The maturity check: /maturity."},
    "expired": {"ru": "Эта проверка уже завершена или прервана. Начать заново — /maturity.",
                "en": "This check has already finished or been stopped. To start again: /maturity."},
    "unknown_department": {"ru": "Не знаю такого направления: «{value}». Можно: /maturity, /maturity sales, "
                                 "/maturity service, /maturity history.",
                           "en": "Unknown department \"{value}\". Try /maturity, /maturity sales, "
                                 "/maturity service or /maturity history."},
    "your_answer": {"ru": "Ваш ответ", "en": "Your answer"},
    "why": {"ru": "Почему так", "en": "Why"},
    # a department whose answers the sales pipeline's data cannot speak to (service)
    "no_sales_hints": {"ru": "Подсказки из данных CRM читают воронку продаж, поэтому для сервиса не показаны.",
                       "en": "The CRM data hints read the sales pipeline, so they are not shown for service."},
    "fix_first": {"ru": "Что доделать в первую очередь", "en": "What to fix first"},
    "next_steps": {"ru": "Следующие шаги", "en": "Next steps"},
    "caveats": {"ru": "Важно помнить", "en": "Keep in mind"},
    "data_says": {"ru": "Что говорят данные", "en": "What the data says"},
    "data_prefix": {"ru": "По данным CRM", "en": "CRM data"},
    "history_title": {"ru": "История проверок зрелости", "en": "Maturity check history"},
    "history_empty": {"ru": "Проверок ещё не было. Пройти первую — /maturity.",
                      "en": "No checks yet. Take the first one: /maturity."},
    "history_team": {"ru": "Команда", "en": "Team"},
    "you": {"ru": "вы", "en": "you"},
    "now": {"ru": "сейчас", "en": "now"},
    "level_in_month": {"ru": "{level} в {month}", "en": "{level} in {month}"},
    "digest_hint": {"ru": "На каком уровне автоматизации ваши продажи? Пять вопросов, две минуты: /maturity",
                    "en": "Where does your sales automation stand? Five questions, two minutes: /maturity"},
}

# A level in a running sentence (history): never the internal code "2+".
LEVEL_SHORT: dict[str, dict[str, str]] = {
    "1": {"ru": "уровень 1", "en": "level 1"},
    "2": {"ru": "уровень 2", "en": "level 2"},
    "2+": {"ru": "уровень 2 с элементами уровня 3", "en": "level 2 with elements of level 3"},
    "3": {"ru": "уровень 3", "en": "level 3"},
}

# Russian months in the prepositional case ("в марте"); Babel has nominative and genitive only.
_MONTHS_IN = {
    "ru": ("январе", "феврале", "марте", "апреле", "мае", "июне", "июле", "августе", "сентябре",
           "октябре", "ноябре", "декабре"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}


# --- lookups ---------------------------------------------------------------------------------

def ui(key: str, lang: str, **kw: Any) -> str:
    text = UI[key][check_lang(lang)]
    return text.format(**kw) if kw else text


def _own(kind: str, key: str, department: str | None) -> dict[str, str] | None:
    return BY_DEPARTMENT.get(department or "", {}).get(kind, {}).get(key)


def question_text(question_id: str, lang: str, department: str | None = None) -> str:
    return (_own("questions", question_id, department) or QUESTIONS[question_id])[check_lang(lang)]


def topic(question_id: str, lang: str, department: str | None = None) -> str:
    return (_own("topics", question_id, department) or TOPICS[question_id])[check_lang(lang)]


def gap_text(question_id: str, lang: str, department: str | None = None) -> str:
    return (_own("gaps", question_id, department) or GAPS[question_id])[check_lang(lang)]


def option_label(question_id: str, option_id: str, lang: str) -> str:
    return OPTIONS[question_id][option_id][check_lang(lang)]


def answer_meaning(question_id: str, option_id: str, lang: str) -> str:
    return MEANINGS[question_id][option_id][check_lang(lang)]


def level_name(label: str, lang: str) -> str:
    return LEVEL_NAMES[label][check_lang(lang)]


def level_short(label: str, lang: str) -> str:
    """"уровень 2 с элементами уровня 3" for the code "2+"; an unknown code is shown as "уровень X"."""
    forms = LEVEL_SHORT.get(str(label))
    if forms is None:
        return ("уровень " if check_lang(lang) == "ru" else "level ") + str(label)
    return forms[check_lang(lang)]


def answer_sentence(question_id: str, option_id: str, lang: str, department: str | None = None) -> str:
    return (_own("answers", f"{question_id}.{option_id}", department)
            or ANSWERS[question_id][option_id])[check_lang(lang)]


def level_description(label: str, lang: str) -> str:
    return LEVEL_DESCRIPTIONS[label][check_lang(lang)]


def next_steps(level: int, lang: str) -> list[str]:
    return list(NEXT_STEPS[level][check_lang(lang)])


# How to run the check per department, where the person is.
DEPARTMENT_HOW = {"chat": "/maturity sales, /maturity service",
                  "terminal": "crm-pulse diagnose --department sales|service"}


def caveats(lang: str, surface: str = "chat") -> list[str]:
    """The caveats; `surface` ("chat" | "terminal") picks how a per-department run is started."""
    return [c.format(how=DEPARTMENT_HOW[surface]) for c in CAVEATS[check_lang(lang)]]


def department_name(department: str, lang: str) -> str:
    return DEPARTMENTS[department][check_lang(lang)]


def digest_hint(lang: str) -> str:
    """One line for the director's digest pointing to the check."""
    return ui("digest_hint", lang)


def reminder_text(question_id: str, option_ids: Sequence[str], lang: str) -> str:
    """The gentle nudge when someone types instead of pressing a button."""
    options = "; ".join(f"{i} — {option_label(question_id, o, lang)}" for i, o in enumerate(option_ids, 1))
    return ui("reminder", lang, options=options)


# --- data hints ------------------------------------------------------------------------------

def _duration(minutes: float, lang: str) -> str:
    if minutes < 1:
        return "меньше минуты" if lang == "ru" else "under a minute"
    if minutes < 90:
        return f"{number(round(minutes), lang)}\u00a0{'мин' if lang == 'ru' else 'min'}"
    if minutes < 48 * 60:
        return count(round(minutes / 60, 1), "hour", lang)
    return count(round(minutes / 1440, 1), "day", lang)


_SIGNATURES = {
    "automatic": {"ru": "Это похоже на автоматическое распределение по правилам.",
                  "en": "That looks like automatic distribution by rules."},
    "manual": {"ru": "Это больше похоже на ручное распределение.",
               "en": "That looks more like distribution by hand."},
    "mixed": {"ru": "Картина смешанная: часть заявок, похоже, распределяется вручную.",
              "en": "The picture is mixed: some leads seem to be distributed by hand."},
    "unclear": {"ru": "Данных мало, чтобы судить уверенно.",
                "en": "There is too little data to judge with confidence."},
}

_FIELD_NAMES = {
    "client_id": {"ru": "клиент", "en": "client"},
    "amount": {"ru": "сумма", "en": "amount"},
    "source": {"ru": "источник", "en": "source"},
}


def hint_text(hint: Any, lang: str) -> str:
    """One plain sentence or two from a DataHint (.kind, .facts); unknown kinds say so plainly."""
    lang = check_lang(lang)
    f = hint.facts or {}
    ru = lang == "ru"
    kind = hint.kind
    if kind == "no_data":
        return ("Данных CRM под рукой нет, поэтому сверить ответы с данными не получилось."
                if ru else "No CRM data is available, so the answers could not be compared with the data.")
    if kind == "crm_coverage":
        return _coverage_text(f, lang)
    if kind == "no_leads":
        return ("В данных нет заявок (таблица leads), поэтому скорость и равномерность распределения не видны."
                if ru else "The data has no leads (the leads table), so the speed and evenness of distribution "
                           "cannot be seen.")
    if kind == "leads_without_managers":
        return (f"У заявок ({number(f['leads_n'], lang)}) не указан менеджер, распределение по данным не видно."
                if ru else f"The leads ({number(f['leads_n'], lang)}) have no manager set, so the data does not "
                           "show the distribution.")
    if kind == "lead_assignment":
        return _lead_assignment_text(f, lang)
    if kind == "no_activities":
        return ("В данных нет активностей (таблица activities), поэтому автоматические действия не видны."
                if ru else "The data has no activities (the activities table), so automatic actions cannot "
                           "be seen.")
    if kind == "activities_unmarked":
        return (f"В активностях ({number(f['activities_n'], lang)}) не отмечено, кто их создал, человек или "
                "система (нужна колонка created_by или is_auto), поэтому данные на этот вопрос не отвечают."
                if ru else f"The activities ({number(f['activities_n'], lang)}) do not record who created them, "
                           "a person or the system (a created_by or is_auto column is needed), so the data "
                           "cannot answer this question.")
    if kind == "auto_activities":
        share = percent(f["auto_share"], lang)
        return (f"Система сама создала {number(f['auto_n'], lang)} из "
                f"{count(f['marked_n'], 'activity', lang, case='gent')} ({share})."
                if ru else f"The system itself created {number(f['auto_n'], lang)} of "
                           f"{number(f['marked_n'], lang)} activities ({share}).")
    if kind == "data_quality":
        return _data_quality_text(f, lang)
    if kind.startswith("model_"):
        return _model_text(kind, f, lang)
    return ("Подсказка из данных: " if ru else "Data hint: ") + kind


def _coverage_text(f: dict[str, Any], lang: str) -> str:
    ru = lang == "ru"
    held, missing = [], []
    names = {"clients": ("карточки клиентов", "client cards"), "emails_n": ("письма", "emails"),
             "calls_n": ("звонки", "calls"), "meetings_n": ("встречи", "meetings")}
    for key, (name_ru, name_en) in names.items():
        value = f.get(key)
        name = name_ru if ru else name_en
        if value is None or value is False or value == 0:
            missing.append(name)
        elif value is True:
            held.append(name)
        else:
            held.append(f"{name} ({number(value, lang)})")
    parts = [("Сколько систем открывает менеджер, данные не покажут; видно, что уже хранится в CRM: "
              if ru else "The data cannot show how many systems a manager opens, only what the CRM already holds: ")
             + (", ".join(held) if held else ("почти ничего, кроме сделок" if ru else "little beyond deals")) + "."]
    if missing:
        parts.append(("Нет в данных: " if ru else "Not in the data: ") + ", ".join(missing) + ".")
    return " ".join(parts)


def _lead_assignment_text(f: dict[str, Any], lang: str) -> str:
    ru = lang == "ru"
    parts = [(f"С {day_month(f['window_start'], lang)} по {day_month(f['window_end'], lang)} — "
              f"{count(f['leads_n'], 'lead', lang)}, с менеджером {percent(f['assigned_share'], lang)}.")
             if ru else
             (f"From {day_month(f['window_start'], lang)} to {day_month(f['window_end'], lang)}, "
              f"{count(f['leads_n'], 'lead', lang)}, {percent(f['assigned_share'], lang)} with a manager.")]
    if f.get("median_minutes") is not None:
        fast = percent(f["fast_share"], lang)
        mins = number(f["fast_minutes"], lang)
        parts.append(f"От создания заявки до назначения менеджера в среднем (медиана) "
                     f"{_duration(f['median_minutes'], lang)}, за {mins} мин назначено {fast}."
                     if ru else
                     f"Median time from a lead's creation to its assignment: {_duration(f['median_minutes'], lang)}; "
                     f"{fast} assigned within {mins} min.")
    else:
        parts.append("Время назначения (assigned_at) в данных не заполнено."
                     if ru else "The assignment time (assigned_at) is not filled in the data.")
    if f.get("evenness_cv") is not None:
        spread = percent(f["evenness_cv"], lang)
        parts.append(f"Заявок на менеджера (с учётом ставки) у {count(f['managers_n'], 'manager', lang, case='gent')}: "
                     f"разброс около ±{spread}."
                     if ru else
                     f"Leads per manager (per FTE) across {f['managers_n']} managers vary by about ±{spread}.")
    parts.append(_SIGNATURES.get(f.get("signature", "unclear"), _SIGNATURES["unclear"])[lang])
    return " ".join(parts)


def _data_quality_text(f: dict[str, Any], lang: str) -> str:
    ru = lang == "ru"
    closed, needed = f["closed_n"], f["needed_closed_n"]
    parts = [(f"Для третьего уровня: закрытых сделок {number(closed, lang)} "
              f"(выиграно {number(f['won_n'], lang)}, проиграно {number(f['lost_n'], lang)}); "
              f"чтобы модель нашла закономерности, нужны тысячи, ориентир — {number(needed, lang)}.")
             if ru else
             (f"For level 3: {number(closed, lang)} closed deals ({number(f['won_n'], lang)} won, "
              f"{number(f['lost_n'], lang)} lost); a model needs thousands to find patterns, "
              f"a rough bar is {number(needed, lang)}.")]
    if f.get("lost_with_reason_share") is not None:
        share = percent(f["lost_with_reason_share"], lang)
        parts.append(f"Причина отказа указана у {share} проигранных сделок."
                     if ru else f"A loss reason is recorded for {share} of lost deals.")
    else:
        parts.append("Проигранных сделок с причинами отказа в данных нет."
                     if ru else "The data has no lost deals with loss reasons to check.")
    if f.get("incomplete_share") == 0:
        parts.append("Ключевые поля (клиент, сумма, источник) заполнены у всех сделок."
                     if ru else "The key fields (client, amount, source) are filled in every deal.")
    elif f.get("incomplete_share") is not None:
        worst = [e for e in f.get("empty_fields", []) if e["empty_share"] > 0]
        detail = ", ".join(f"{_FIELD_NAMES.get(e['field'], {}).get(lang, e['field'])} — "
                           f"{percent(e['empty_share'], lang)}" for e in worst)
        parts.append((f"Хотя бы одно ключевое поле (клиент, сумма, источник) пусто у "
                      f"{percent(f['incomplete_share'], lang)} сделок" + (f" ({detail})." if detail else "."))
                     if ru else
                     (f"At least one key field (client, amount, source) is empty in "
                      f"{percent(f['incomplete_share'], lang)} of deals" + (f" ({detail})." if detail else ".")))
    if closed < needed:
        parts.append("Для обучения моделей этого пока мало." if ru else "That is not yet enough to train models.")
    else:
        parts.append("По количеству сделок для пилотной модели уже хватает."
                     if ru else "By the number of deals there is already enough for a pilot model.")
    return " ".join(parts)


def _model_text(kind: str, f: dict[str, Any], lang: str) -> str:
    """The win model's verdict (bot.maturity.data_hints.model_readiness_hint) in words."""
    ru = lang == "ru"
    if kind == "model_no_closing_dates":
        return ("У сделок нет даты закрытия (closed_at), поэтому модели не на чем учиться предсказывать исход."
                if ru else "Deals have no closing date (closed_at), so a model has nothing to learn outcomes from.")
    have = (f"закрытых сделок с датой закрытия {number(f['closed_n'], lang)} (выиграно {number(f['won_n'], lang)}, "
            f"проиграно {number(f['lost_n'], lang)})" if ru else
            f"{number(f['closed_n'], lang)} closed deals with a closing date ({number(f['won_n'], lang)} won, "
            f"{number(f['lost_n'], lang)} lost)")
    if kind == "model_history_short":
        miss = f.get("missing") or {}
        names = {"closed": ("закрытых", "closed"), "won": ("выигранных", "won"), "lost": ("проигранных", "lost")}
        gaps = ", ".join(f"{number(miss[k], lang)} {names[k][0 if ru else 1]}" for k in names if miss.get(k))
        parts = [(f"Для прогноза по сделкам пока мало истории: {have}; нужно не меньше {number(f['min_closed'], lang)}, "
                  f"из них выигранных {number(f['min_won'], lang)} и проигранных {number(f['min_lost'], lang)}. "
                  f"Не хватает: {gaps}.") if ru else
                 (f"Too little history to predict deals yet: {have}; at least {number(f['min_closed'], lang)} are "
                  f"needed, {number(f['min_won'], lang)} won and {number(f['min_lost'], lang)} lost. "
                  f"Missing: {gaps}.")]
        if f.get("months_to_enough"):
            per = float(f["closed_per_month"])
            pace = number(round(per) if per >= 10 else per, lang)
            parts.append(f"При нынешнем темпе (около {pace} закрытых сделок в месяц) это примерно "
                         f"{count(f['months_to_enough'], 'month', lang)}." if ru else
                         f"At the current pace (about {pace} closed deals a month) that is about "
                         f"{count(f['months_to_enough'], 'month', lang)}.")
        else:
            parts.append("За последние три месяца нужных закрытий не было, поэтому срок не оценить."
                         if ru else "No such deals closed in the last three months, so there is no date to give.")
        return " ".join(parts)
    if kind == "model_untested":
        return (f"Истории уже достаточно ({have}), но проверить модель на прошлом пока не на чем: мало сделок до "
                "точки проверки (подробнее: crm-pulse model report)." if ru else
                f"There is enough history ({have}), but too little of it before the backtest cutoff to test a model "
                "(details: crm-pulse model report).")
    brier, base = (f"{float(f[k]):.3f}".replace(".", "," if ru else ".") for k in ("brier", "baseline_brier"))
    history = (f"закрыто сделок: {number(f['closed_n'], lang)}, выиграно {number(f['won_n'], lang)}, "
               f"проиграно {number(f['lost_n'], lang)}" if ru else
               f"{number(f['closed_n'], lang)} closed deals: {number(f['won_n'], lang)} won, {number(f['lost_n'], lang)} lost")
    if f.get("beats_baseline"):
        return (f"На истории компании ({history}) модель прогноза по сделкам точнее доли выигранных по этапу: ошибка "
                f"(Brier) {brier} против {base}, на {percent(f['gain'], lang)} меньше. Прогнозы и рекомендации из данных "
                "можно включать (deal_risk и win_forecast в config.toml; подробнее: crm-pulse model report)."
                if ru else
                f"On the company's own history ({history}) a deal model beats each stage's win rate: Brier {brier} vs "
                f"{base}, {percent(f['gain'], lang)} lower. Predictions and recommendations from the data can be "
                "switched on (deal_risk and win_forecast in config.toml; details: crm-pulse model report).")
    return (f"На истории компании ({history}) модель пока не точнее доли выигранных по этапу: ошибка (Brier) {brier} "
            f"против {base}. Прогнозы ничего не добавят к взвешенной воронке; помогут касания, письма, источник и "
            "сумма в каждой сделке (подробнее: crm-pulse model report)."
            if ru else
            f"On the company's own history ({history}) a model does not yet beat each stage's win rate: Brier {brier} "
            f"vs {base}. Predictions would add nothing to the weighted pipeline; touches, emails, source and amount "
            "on every deal would help (details: crm-pulse model report).")


# --- one neutral view, three renderings -----------------------------------------------------

class _Blocks:
    """Collects (kind, payload) pieces: ('title', str), ('para', str), ('heading', str),
    ('item', (bold, rest, separator)), ('bullet', str), ('step', (n, str)), ('note', str)."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, Any]] = []

    def add(self, kind: str, value: Any) -> None:
        self.parts.append((kind, value))


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _after_colon(text: str) -> str:
    """A sentence put after "По данным CRM:" goes on in lower case ("по данным CRM: с 22 по 29 мая"),
    except a word that is capitals throughout (CRM, SLA) or a name."""
    first = text.split(" ", 1)[0]
    if len(first) > 1 and first[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def _result_view(result: Any, hints: Iterable[Any], lang: str, department: str | None,
                 surface: str = "chat") -> _Blocks:
    lang = check_lang(lang)
    hints = list(hints)
    sales_hints_left_out = bool(hints) and department == "service"  # in chat and in the terminal alike
    if sales_hints_left_out:
        hints = []
    b = _Blocks()
    title = ui("title", lang) + (f" — {department_name(department, lang)}" if department else "")
    b.add("title", title)
    b.add("heading", level_name(result.label, lang))
    b.add("para", level_description(result.label, lang))
    b.add("heading", ui("why", lang))
    for r in result.reasons:
        b.add("item", (answer_sentence(r.question_id, r.option_id, lang, department),
                       _upper_first(answer_meaning(r.question_id, r.option_id, lang)), " "))
        for h in hints:
            if h.question_id == r.question_id:
                b.add("note", f"{ui('data_prefix', lang)}: {_after_colon(hint_text(h, lang))}")
    if sales_hints_left_out:
        b.add("note", ui("no_sales_hints", lang))
    loose = [h for h in hints if h.question_id not in QUESTION_ORDER]
    if loose:
        b.add("heading", ui("data_says", lang))
        for h in loose:
            b.add("bullet", hint_text(h, lang))
    if result.gaps or result.warnings:
        b.add("heading", ui("fix_first", lang))
        for g in result.gaps:
            b.add("bullet", gap_text(g, lang, department))
        for w in result.warnings:
            b.add("bullet", WARNINGS[w][lang])
    b.add("heading", ui("next_steps", lang))
    for i, step in enumerate(next_steps(result.level, lang), 1):
        b.add("step", (i, step))
    b.add("heading", ui("caveats", lang))
    for c in caveats(lang, surface):
        b.add("bullet", c)
    return b


def _question_view(question_id: str, index: int, total: int, lang: str, department: str | None,
                   with_intro: bool, note: str | None = None, surface: str = "chat") -> _Blocks:
    b = _Blocks()
    if note:
        b.add("para", note)
    title = ui("title", lang) + (f" — {department_name(department, lang)}" if department else "")
    b.add("title", title)
    if with_intro:
        b.add("para", ui("intro_terminal" if surface == "terminal" else "intro", lang))
    b.add("note", ui("question_no", lang, n=index, total=total))
    b.add("heading", question_text(question_id, lang, department))
    return b


def _plain(b: _Blocks) -> str:
    lines: list[str] = []
    for kind, v in b.parts:
        if kind == "title":
            lines += [v, "=" * min(len(v), 60)]
        elif kind == "heading":
            lines += ["", v]
        elif kind == "para":
            lines.append(v)
        elif kind == "item":
            lines.append(f"• {v[0]}{v[2]}{v[1]}")
        elif kind == "bullet":
            lines.append(f"• {v}")
        elif kind == "step":
            lines.append(f"{v[0]}. {v[1]}")
        elif kind == "note":
            lines.append(f"  {v}")
    return "\n".join(lines).strip() + "\n"


def _telegram(b: _Blocks) -> str:
    e = html.escape
    lines: list[str] = []
    for kind, v in b.parts:
        if kind == "title":
            lines.append(f"<b>{e(v)}</b>")
        elif kind == "heading":
            lines += ["", f"<b>{e(v)}</b>"]
        elif kind == "para":
            lines.append(e(v))
        elif kind == "item":
            lines.append(f"• <b>{e(v[0])}</b>{v[2]}{e(v[1])}")
        elif kind == "bullet":
            lines.append(f"• {e(v)}")
        elif kind == "step":
            lines.append(f"{v[0]}. {e(v[1])}")
        elif kind == "note":
            lines.append(f"<i>{e(v)}</i>")
    return "\n".join(lines).strip()


def _mrkdwn(text: str) -> dict[str, Any]:
    """A verbatim mrkdwn object: escaped text stays text (no auto-linked URL, channel or user)."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _slack_blocks(b: _Blocks) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            text = "\n".join(buf)
            while text:  # a section holds at most 3000 characters
                blocks.append({"type": "section", "text": _mrkdwn(text[:3000])})
                text = text[3000:]
            buf.clear()

    for kind, v in b.parts:
        if kind == "title":
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": plain_safe(v)[:150]}})
        elif kind == "heading":
            flush()
            buf.append(f"*{slack_escape(v)}*")
        elif kind == "para":
            buf.append(slack_escape(v))
        elif kind == "item":
            buf.append(f"• *{slack_escape(v[0])}*{v[2]}{slack_escape(v[1])}")
        elif kind == "bullet":
            buf.append(f"• {slack_escape(v)}")
        elif kind == "step":
            buf.append(f"{v[0]}. {slack_escape(v[1])}")
        elif kind == "note":
            buf.append(f"_{slack_escape(v)}_")
    flush()
    return blocks


def _buttons(question_id: str, index: int, option_ids: Sequence[str], lang: str) -> list[list[dict[str, str]]]:
    rows = [[{"label": option_label(question_id, o, lang), "action": f"mq:{index}:{i}"}]
            for i, o in enumerate(option_ids, 1)]
    nav = [{"label": ui("cancel", lang), "action": "mq:cancel"}]
    if index > 1:
        nav.insert(0, {"label": ui("back", lang), "action": "mq:back"})
    rows.append(nav)
    return rows


def _slack_actions(rows: list[list[dict[str, str]]]) -> dict[str, Any]:
    elements = []
    for row in rows:
        for btn in row:
            elements.append({"type": "button", "text": {"type": "plain_text", "text": plain_safe(btn["label"])[:75]},
                             "action_id": btn["action"], "value": btn["action"]})
    return {"type": "actions", "block_id": "maturity", "elements": elements}


# --- public formatters ------------------------------------------------------------------------

def format_question(question_id: str, index: int, total: int, option_ids: Sequence[str], lang: str, fmt: str, *,
                    department: str | None = None, with_intro: bool = False, note: str | None = None,
                    surface: str = "chat") -> dict[str, Any]:
    """One question as a channel payload: fmt "telegram" -> {"text": html, "buttons"},
    "slack" -> {"text", "blocks"} with an actions block, "plain" -> {"text"} (numbered options).
    `note` (e.g. the reminder) goes above the question; `surface` "terminal" tells how to answer
    there (numbers, b, q) instead of the chat's /cancel."""
    view = _question_view(question_id, index, total, lang, department, with_intro, note, surface)
    rows = _buttons(question_id, index, option_ids, lang)
    if fmt == "telegram":
        return {"text": _telegram(view), "buttons": rows}
    if fmt == "slack":
        fallback = f"{ui('question_no', lang, n=index, total=total)}: {question_text(question_id, lang, department)}"
        return {"text": slack_escape(f"{note} {fallback}" if note else fallback),
                "blocks": _slack_blocks(view) + [_slack_actions(rows)]}
    options = "\n".join(f"  {i}. {option_label(question_id, o, lang)}" for i, o in enumerate(option_ids, 1))
    return {"text": _plain(view) + options + "\n"}


def format_result(result: Any, hints: Iterable[Any], lang: str, fmt: str, *,
                  department: str | None = None, surface: str = "chat") -> dict[str, Any]:
    """The result as a channel payload (see format_question for fmt)."""
    view = _result_view(result, hints, lang, department, surface)
    if fmt == "telegram":
        return {"text": _telegram(view), "buttons": []}
    if fmt == "slack":
        return {"text": slack_escape(f"{ui('title', lang)}: {level_name(result.label, lang)}"),
                "blocks": _slack_blocks(view)}
    return {"text": _plain(view)}


def result_text(result: Any, hints: Iterable[Any], lang: str, *, department: str | None = None) -> str:
    """Plain text of the result, for the terminal (`crm-pulse diagnose`)."""
    return format_result(result, hints, lang, "plain", department=department, surface="terminal")["text"]


def format_note(text: str, fmt: str) -> dict[str, Any]:
    """A one-line message (reminder, cancelled...) in a channel's payload shape."""
    if fmt == "telegram":
        return {"text": html.escape(text), "buttons": []}
    if fmt == "slack":
        return {"text": slack_escape(text), "blocks": [{"type": "section", "text": _mrkdwn(slack_escape(text))}]}
    return {"text": text}


# --- history ----------------------------------------------------------------------------------

def month_phrase(when: datetime, lang: str, now: datetime) -> str:
    """"марте" / "March", with the year when it is not the current one."""
    name = _MONTHS_IN[check_lang(lang)][when.month - 1]
    return name if when.year == now.year else f"{name} {when.year}"


def trend_line(entries: Sequence[tuple[datetime, str]], lang: str, now: datetime) -> str:
    """[(completed_at, label), ...] oldest first -> "уровень 1 в марте → уровень 2 сейчас".

    One entry per month (the month's last); the latest check is "now".
    """
    if not entries:
        return ""
    by_month: dict[tuple[int, int], tuple[datetime, str]] = {}
    for when, label in sorted(entries, key=lambda e: e[0]):
        by_month[(when.year, when.month)] = (when, label)
    points = list(by_month.values())
    latest = points[-1]
    earlier = points[:-1][-5:]
    parts = [ui("level_in_month", lang, level=level_short(label, lang), month=month_phrase(when, lang, now))
             for when, label in earlier]
    day = day_month(latest[0], lang, with_year=latest[0].year != now.year)
    parts.append(f"{level_short(latest[1], lang)} {ui('now', lang)} ({day})")
    return " → ".join(parts)


def format_history(groups: Sequence[tuple[str | None, str | None, Sequence[tuple[datetime, str]]]], lang: str,
                   now: datetime, fmt: str) -> dict[str, Any]:
    """groups: (who — a name, or None for "you"; department or None; entries). Empty -> the "no checks" line."""
    b = _Blocks()
    b.add("title", ui("history_title", lang))
    if not groups:
        b.add("para", ui("history_empty", lang))
    for who, department, entries in groups:
        name = who if who else ui("you", lang).capitalize()
        if department:
            name += f" ({department_name(department, lang)})"
        b.add("item", (name + ":", trend_line(entries, lang, now), " "))
    if fmt == "telegram":
        return {"text": _telegram(b), "buttons": []}
    if fmt == "slack":
        return {"text": slack_escape(ui("history_title", lang)), "blocks": _slack_blocks(b)}
    return {"text": _plain(b)}
