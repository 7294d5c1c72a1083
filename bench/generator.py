"""A synthetic Zhuhai: subjects and five years of department records, deterministic by seed.

Pure: no I/O. `City(seed, as_of).stream(subjects)` yields the submissions departments would
have sent, in the order they would have sent them (by date within blocks of subjects), as
`(department, data, event_id)`; the same seed and as-of date give the same data.

Proportions (an estimate for Zhuhai, where the archive holds every registered organization
and the individuals that records name): about 410,000 market entities, of which ~260,000
enterprises (GB 32100 category 91) and ~150,000 individual businesses (92), a few thousand
farmers' cooperatives (93); ~2,400 social organizations (51 associations and chambers of
commerce, 52 private non-enterprise units, 53 foundations); ~1,600 public institutions (12);
and individuals named by dishonest-debtor, tax and wage-arrears records (people enter a
public credit archive through a record, not through residence). Hence, per subject:
enterprise 89 % (91 : 92 : 93 = 62 : 37 : 1), individual 10 %, social organization 0.6 %,
institution 0.4 %.

Records: about three per subject over five years, more recent years weighted more (the
archive grows), decisions on working days; each enterprise's legal representative
(法定代表人) is registered; a record that feeds a list is later withdrawn by its department
with the probability its list's exit rules make likely (a dishonest debtor who paid, a
listing past its term: 法释〔2017〕7号 two years; tax Order 54 and the wage-arrears list three
years; an A-grade rating one year), so that a realistic share of the city is listed.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any, Generic, TypeVar

from shared import disclosure
from shared.catalogue import Catalogue, load_catalogue
from shared.identifiers import (
    ID_CHECK,
    ID_WEIGHTS,
    USCC_ALPHABET,
    org_code_check_character,
    uscc_check_character,
)

T = TypeVar("T")

# --- proportions ---------------------------------------------------------------------------

# (subject type, USCC category or None for individuals), share of all subjects.
CATEGORIES: tuple[tuple[str, str | None, float], ...] = (
    ("enterprise", "91", 0.89 * 0.62),
    ("enterprise", "92", 0.89 * 0.37),
    ("enterprise", "93", 0.89 * 0.01),
    ("individual", None, 0.10),
    ("social_org", "51", 0.006 * 0.55),
    ("social_org", "52", 0.006 * 0.40),
    ("social_org", "53", 0.006 * 0.05),
    ("institution", "12", 0.004),
)

# How many records (besides an enterprise's legal-representative registration) a subject of
# each category has over the five years: {count: weight}.
RECORD_COUNTS: dict[str, dict[int, float]] = {
    "91": {0: 18, 1: 24, 2: 22, 3: 15, 4: 10, 5: 6, 6: 3, 8: 2},
    "92": {1: 28, 2: 28, 3: 18, 4: 12, 5: 7, 7: 5, 9: 2},
    "93": {0: 30, 1: 30, 2: 20, 3: 20},
    "individual": {1: 50, 2: 25, 3: 12, 4: 6, 5: 4, 7: 2, 10: 1},
    "12": {1: 40, 2: 30, 3: 20, 5: 10},
    "5x": {1: 40, 2: 30, 3: 20, 5: 10},
}

# Which catalogue items a subject's records come from, by category. An item of the
# catalogue named here for no category still gets a small weight for every subject type it
# applies to, so that every item has records.
ITEM_WEIGHTS: dict[str, dict[str, float]] = {
    "91": {"amr.admin_penalty": 30, "amr.abnormal_operation": 32, "tax.a_grade_taxpayer": 15,
           "court.dishonest_debtor": 4, "amr.legal_representative": 5, "hrss.wage_arrears": 0.5,
           "tax.major_violation": 0.3, "customs.advanced_certified": 0.15},
    "92": {"amr.abnormal_operation": 55, "amr.admin_penalty": 35, "court.dishonest_debtor": 3,
           "tax.a_grade_taxpayer": 2, "hrss.wage_arrears": 0.3, "tax.major_violation": 0.1},
    "93": {"amr.abnormal_operation": 50, "amr.admin_penalty": 25, "court.dishonest_debtor": 8,
           "tax.a_grade_taxpayer": 10, "hrss.wage_arrears": 1},
    "individual": {"court.dishonest_debtor": 94, "hrss.wage_arrears": 3,
                   "tax.major_violation": 3},
    "12": {"staffing.report_overdue": 85, "court.dishonest_debtor": 15},
    "5x": {"civil.activity_abnormal": 85, "court.dishonest_debtor": 15},
}

# Public credit commitments (守信公开承诺) are not generated: their records carry a signed
# text and a term, and their breach is a later revision (shared/commitments.py), which the
# generator's one-revision records do not model. Government bodies are not generated either
# (the city's CATEGORIES have none), so nor are their defaults and service commitments.

# Withdrawal by the department: (term in years, chance once the term is over, chance within
# it). Court listings end when the debt is performed or after two years (法释〔2017〕7号);
# major tax violators after three (国家税务总局令第54号); wage-arrears listings after three
# (人社部令第45号) or on payment; an A-grade rating is re-evaluated every year; a firm leaves
# the abnormal-operations directory once it files its report.
LIFECYCLE: dict[str, tuple[int, float, float]] = {
    "court.dishonest_debtor": (2, 0.95, 0.55),
    "tax.major_violation": (3, 0.90, 0.15),
    "hrss.wage_arrears": (3, 0.90, 0.50),
    "tax.a_grade_taxpayer": (1, 0.95, 0.0),
    "customs.advanced_certified": (3, 0.60, 0.03),
    "amr.abnormal_operation": (1, 0.50, 0.25),
    "civil.activity_abnormal": (1, 0.50, 0.20),
    "staffing.report_overdue": (1, 0.60, 0.20),
}

# Share of legal representatives who are themselves individuals of the archive.
LEGAL_REP_IN_ARCHIVE = 0.12
YEARS = 5

# --- names -----------------------------------------------------------------------------------

# Surnames by frequency in the Pearl River Delta (陈 first), including Cantonese compound
# and rare ones.
SURNAMES: dict[str, float] = {
    "陈": 12, "李": 8, "黄": 7, "张": 6, "梁": 5, "林": 4.5, "刘": 4.5, "吴": 4, "罗": 3.5,
    "何": 3.5, "郑": 3, "杨": 3, "谢": 3, "王": 2.5, "周": 2.5, "邓": 2.5, "冯": 2.5, "叶": 2.5,
    "曾": 2.5, "郭": 2, "蔡": 2, "钟": 2, "卢": 2, "赵": 1.5, "徐": 1.5, "朱": 1.5, "胡": 1.5,
    "苏": 1.5, "许": 1.5, "潘": 1.5, "彭": 1.5, "廖": 1.5, "邱": 1.2, "孙": 1, "马": 1, "高": 1,
    "袁": 1, "唐": 1, "赖": 1, "江": 1, "余": 1, "温": 1, "莫": 1, "方": 1, "麦": 0.6, "关": 0.6,
    "韩": 0.5, "董": 0.5, "程": 0.5, "曹": 0.5, "沈": 0.5, "汤": 0.5, "严": 0.5, "欧阳": 0.4,
    "龚": 0.4, "司徒": 0.3, "区": 0.3, "容": 0.3, "古": 0.3, "甘": 0.3, "凌": 0.3, "柯": 0.3,
    "谭": 1.2, "邝": 0.3, "伍": 0.6, "黎": 0.8, "侯": 0.3, "上官": 0.03, "诸葛": 0.02,
}
# Given-name characters, most used first: their use falls off like a Zipf law, which is what
# makes namesakes (陈伟, 李敏) common.
GIVEN_COMMON = ("伟明华军强文国建志海东平杰斌辉勇俊锋涛峰波宇浩婷丽芳敏静燕霞红玲丹娟慧颖琳"
                "欣怡佳雪梅秀英兰凤玉珍君云晓嘉家子永金德荣健彬坚雄权洪毅锦耀振达泳诗咏思晴")
GIVEN: dict[str, float] = {ch: 1 / (rank + 1) for rank, ch in enumerate(GIVEN_COMMON)}
GIVEN_RARE = "珏瑾璇翊骁琬珩嫣蔚濠钊焯铧灏霆皓曦湛昕蕙菁琦瀚烨颢"

# Characters of trade names (字号).
ZIHAO = ("华发金海恒瑞通达信诚宏源泰鑫盛隆昌兴富荣德安康宁佳美嘉和顺利祥福丰永新联创智汇合众"
         "天宇远航星辰博正中港澳湾珠格明亮光辉腾飞鹏龙凤凯旋俊豪雅晟铭锦峰威宝晶科翔振立君益"
         "卓越粤南方东西北亿万千百景润泽丰茂广大世纪华夏东方蓝天绿洲银河三江汇丰朗逸骏驰")
TRADES: dict[str, float] = {
    "科技": 12, "贸易": 10, "实业": 5, "投资": 4, "建设工程": 5, "建筑工程": 3, "电子": 4,
    "电器": 2, "物流": 4, "供应链管理": 3, "餐饮管理": 4, "医药": 2, "生物科技": 2,
    "信息技术": 4, "网络科技": 4, "智能科技": 3, "新能源": 2, "房地产开发": 1.5, "物业管理": 2,
    "装饰工程": 3, "文化传媒": 3, "教育咨询": 2, "商务咨询": 3, "企业管理": 3, "酒店管理": 1.5,
    "旅游": 1.5, "海洋渔业": 0.5, "水产": 1, "游艇": 0.5, "机械设备": 2, "五金制品": 1.5,
    "塑胶制品": 1, "印刷": 1, "包装": 1, "环保科技": 2, "人力资源": 1.5, "劳务派遣": 1,
    "汽车服务": 1.5, "运输": 1.5, "进出口": 2, "食品": 2, "农业发展": 1, "园林绿化": 1,
    "工程管理": 1, "检测技术": 1, "半导体": 0.5, "光电": 0.8, "精密制造": 0.8, "模具": 0.8,
}
SHOPS = ("餐馆", "饮食店", "烧腊店", "茶餐厅", "粥店", "面馆", "便利店", "士多店", "商行", "五金店",
         "水果店", "服装店", "美发店", "美容店", "手机店", "电器维修部", "汽车维修店", "建材店",
         "粮油店", "海鲜档", "蔬菜档", "文具店", "眼镜店", "照相馆", "洗衣店", "装饰部", "广告部",
         "奶茶店", "烟酒商行", "批发部", "百货店", "糖水铺", "肠粉店", "药材行")
DISTRICT_NAMES = {"440402": "香洲区", "440403": "斗门区", "440404": "金湾区"}
# Towns and subdistricts (镇街) by district.
TOWNS = {
    "440402": ("拱北街道", "吉大街道", "香湾街道", "梅华街道", "前山街道", "翠香街道",
               "狮山街道", "湾仔街道", "凤山街道", "南屏镇", "唐家湾镇", "横琴镇", "桂山镇",
               "万山镇", "担杆镇"),
    "440403": ("井岸镇", "白蕉镇", "斗门镇", "乾务镇", "莲洲镇", "白藤街道"),
    "440404": ("红旗镇", "三灶镇", "平沙镇", "南水镇"),
}
COOP_PRODUCTS = ("水稻种植", "蔬菜种植", "水产养殖", "禽畜养殖", "花卉苗木", "果蔬", "白蕉海鲈养殖",
                 "荔枝种植", "农机服务", "黄沙蚬养殖")
HOMETOWNS = ("湖南", "湖北", "江西", "四川", "广西", "福建", "河南", "安徽", "浙江", "江苏",
             "山东", "重庆", "贵州", "云南", "陕西", "东北", "潮汕", "客家", "梅州", "茂名",
             "湛江", "揭阳", "汕头", "潮州", "阳江", "河源", "韶关", "清远", "肇庆", "江门",
             "中山", "澳门", "香港", "台湾", "温州", "泉州", "莆田", "晋江", "衡阳", "邵阳")
ASSOCIATION_GROUPS = ("老年人", "个体劳动者", "残疾人", "青年企业家", "志愿者", "摄影", "书法",
                      "钓鱼", "龙舟", "舞蹈", "粤剧", "足球", "篮球", "羽毛球", "围棋", "太极拳",
                      "登山", "户外运动", "慈善", "义工", "妇女", "退役军人", "茶文化", "美食")
ASSOCIATION_KINDS = ("协会", "行业协会", "促进会", "联合会", "研究会")
SOCIETIES = ("医学会", "计算机学会", "土木建筑学会", "海洋学会", "药学会", "护理学会", "心理学会",
             "会计学会", "法学会", "统计学会", "地理学会", "历史学会", "作家协会", "音乐家协会")
NON_ENTERPRISE_UNITS = ("幼儿园", "培训中心", "职业培训学校", "养老院", "社会工作服务中心",
                        "康复中心", "艺术培训中心", "文化交流中心", "民办学校")
FOUNDATION_THEMES = ("教育发展", "见义勇为", "扶贫济困", "医疗救助", "慈善", "文化发展",
                     "青少年发展", "环境保护")
INSTITUTION_CENTRES = ("公共资源交易", "政务服务数据管理", "城市规划设计研究", "环境监测",
                       "质量计量监督检测", "食品药品检验", "疾病预防控制", "急救", "职业病防治",
                       "住房公积金管理", "社会保险基金管理", "不动产登记", "人才资源服务",
                       "建设工程质量监督检测", "水文", "农业技术推广", "动物疫病预防控制",
                       "林业科学研究", "档案", "退役军人服务", "网格化管理服务", "应急管理保障")
INSTITUTION_KINDS = ("中心", "站", "所", "院")
SCHOOLS = ("小学", "中学", "幼儿园", "实验学校", "职业技术学校")
TOWN_INSTITUTIONS = ("卫生院", "社区卫生服务中心", "文化站", "农业服务中心")
DOCUMENT_PREFIXES = {"hrss": "珠人社监", "customs": "拱关认", "civil": "珠民社",
                     "staffing": "珠编办"}

# --- identifiers ------------------------------------------------------------------------------

# Registering authorities of codes: the city's and the districts' (GB/T 2260).
CODE_DIVISIONS: dict[str, dict[str, float]] = {
    "9x": {"440400": 45, "440402": 35, "440403": 10, "440404": 10},
    "12": {"440400": 60, "440402": 25, "440403": 8, "440404": 7},
    "5x": {"440400": 70, "440402": 20, "440403": 5, "440404": 5},
}
# Where people and organizations registered with the city's own authority live and work.
HOME_DISTRICTS: dict[str, float] = {"440402": 70, "440403": 15, "440404": 15}
# Address codes of resident ids by birth year (see resident_division).
BORN_1984_2000: dict[str, float] = {"440402": 60, "440421": 25, "440400": 15}
BORN_SINCE_2001: dict[str, float] = {"440402": 60, "440403": 22, "440404": 18}
# Forms of enterprise names, by index in City._org_name.
ENTERPRISE_NAME_PATTERNS: dict[int, float] = {0: 45, 1: 35, 2: 6, 3: 3, 4: 5, 5: 2, 6: 4}
ORG_DIGITS = "0123456789"
ORG_CHARS = USCC_ALPHABET  # an organization code part must also be valid in GB 32100

# Court codes in case numbers: the intermediate court and the district courts (横琴 0491).
COURTS = {"440402": "0402", "440403": "0403", "440404": "0404"}

SUMMARIES: dict[str, tuple[str, ...]] = {
    "court.dishonest_debtor": ("有履行能力而拒不履行生效法律文书确定义务", "违反财产报告制度",
                               "违反限制消费令",
                               "以虚假诉讼、虚假仲裁或者以隐匿、转移财产等方法规避执行"),
    "tax.major_violation": ("偷税", "逃避追缴欠税", "骗取出口退税", "虚开增值税专用发票"),
    "amr.admin_penalty": ("销售不符合食品安全标准的食品", "虚假宣传", "无照经营",
                          "未按规定明码标价", "产品质量抽检不合格", "侵犯注册商标专用权",
                          "违反价格法规定"),
    "amr.abnormal_operation": ("未按规定期限公示年度报告", "通过登记的住所或者经营场所无法联系",
                               "公示企业信息隐瞒真实情况、弄虚作假"),
    "amr.legal_representative": ("法定代表人登记", "法定代表人变更登记"),
    "hrss.wage_arrears": ("拖欠农民工工资", "克扣、无故拖欠农民工工资，经责令仍不支付"),
    "customs.advanced_certified": ("经海关认证为高级认证企业",),
    "civil.activity_abnormal": ("未按规定参加年度检查", "未按章程开展活动", "登记的住所无法联系"),
    "staffing.report_overdue": ("未按时报送事业单位年度报告",),
}


class Choice(Generic[T]):
    """A weighted choice, its cumulative weights computed once (it runs millions of times)."""

    def __init__(self, table: dict[T, float]) -> None:
        self.options = list(table)
        self.cumulative = list(accumulate(table.values()))

    def __call__(self, rng: random.Random) -> T:
        return rng.choices(self.options, cum_weights=self.cumulative)[0]


_choices: dict[int, Choice[Any]] = {}


def weighted(rng: random.Random, table: dict[T, float]) -> T:
    """A weighted choice from one of this module's constant tables (cached by identity:
    never pass a table built on the fly)."""
    choice = _choices.get(id(table))
    if choice is None:
        choice = _choices[id(table)] = Choice(table)
    return choice(rng)  # type: ignore[no-any-return]


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def resident_division(birth: date, rng: random.Random) -> str:
    """An address code in force in the birth year (GB/T 2260): 斗门县 440421 from 1983 to
    2001, its successors 斗门区 440403 and 金湾区 440404 since 2001, 香洲区 440402 since
    1984; before that only the city's own code 440400."""
    y = birth.year
    if y < 1983:
        return "440400"
    if y < 1984:
        return rng.choice(("440400", "440421"))
    if y <= 2000:
        return weighted(rng, BORN_1984_2000)
    return weighted(rng, BORN_SINCE_2001)


def resident_id(division: str, birth: date, sequence: int) -> str:
    """GB 11643-1999: address, birth date, sequence (odd for men), ISO 7064 MOD 11-2."""
    first17 = f"{division}{birth:%Y%m%d}{sequence:03d}"
    total = sum(int(ch) * w for ch, w in zip(first17, ID_WEIGHTS, strict=True))
    return first17 + ID_CHECK[total % 11]


def uscc(category: str, division: str, org_body: str) -> str | None:
    """GB 32100 code from its parts, with the GB 11714 check character of the organization
    code and the code's own check character; None where the organization code's check
    character is not a GB 32100 symbol."""
    org_check = org_code_check_character(org_body)
    if org_check is None or org_check not in USCC_ALPHABET:
        return None
    first17 = category + division + org_body + org_check
    return first17 + uscc_check_character(first17)


# --- the data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    type: str
    id: str
    name: str
    category: str  # "91", "92", ..., or "individual"
    birth: date | None = None

    @property
    def key(self) -> str:
        return f"{self.type}:{self.id}"

    def ref(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id, "name": self.name}


@dataclass(frozen=True)
class Submission:
    """One event a department sends: `data` of a record.submitted.v1 event."""

    department: str
    data: dict[str, Any]
    event_id: str
    sent_on: date  # when the department sends it: the order of the stream

    @property
    def key(self) -> str:
        subject = self.data["subject"]
        return f"{subject['type']}:{subject['id']}"


@dataclass
class Tally:
    """What a city holds, counted as it is generated."""

    subjects: Counter[str] = field(default_factory=Counter)       # by type
    categories: Counter[str] = field(default_factory=Counter)     # by category
    records: Counter[str] = field(default_factory=Counter)        # by catalogue item
    withdrawals: Counter[str] = field(default_factory=Counter)    # by catalogue item
    listed: Counter[str] = field(default_factory=Counter)         # subjects per list
    submissions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"subjects_by_type": dict(sorted(self.subjects.items())),
                "subjects_by_category": dict(sorted(self.categories.items())),
                "records_by_item": dict(sorted(self.records.items())),
                "withdrawals_by_item": dict(sorted(self.withdrawals.items())),
                "expected_listed_by_list": dict(sorted(self.listed.items())),
                "submissions": self.submissions,
                "records": sum(self.records.values())}


class City:
    """The generator. One instance yields one city; identifiers and organization names are
    unique within it (individuals' names are not: namesakes are the point)."""

    def __init__(self, seed: int, as_of: date, catalogue: Catalogue | None = None) -> None:
        self.seed = seed
        self.as_of = as_of
        self.catalogue = catalogue or load_catalogue()
        self.rng = random.Random(seed)
        # The day after the one five years back: a person's negative record decided on
        # that day is erased on `as_of` (征信业管理条例 art. 16), and ingest refuses it.
        self.window_start = add_years(as_of, -YEARS) + timedelta(days=1)
        self.tally = Tally()
        self._ids: set[str] = set()
        self._names: set[str] = set()
        self._individuals: list[Subject] = []
        self._record_seq: Counter[str] = Counter()
        self._document_seq: Counter[tuple[str, int]] = Counter()
        self._category = Choice({(t, c): w for t, c, w in CATEGORIES})
        self._items: dict[tuple[str, str], Choice[str]] = {}

    # --- subjects --------------------------------------------------------------------------

    def subject(self) -> Subject:
        subject_type, category = self._category(self.rng)
        if category is None:
            s = self._individual()
            self._individuals.append(s)
        else:
            s = self._organization(subject_type, category)
        self.tally.subjects[s.type] += 1
        self.tally.categories[s.category] += 1
        return s

    def _birth(self, youngest: int, oldest: int) -> date:
        # Ages cluster around the working middle years.
        age = self.rng.triangular(youngest, oldest, 42)
        return self.as_of - timedelta(days=int(age * 365.25) + self.rng.randrange(365))

    def _person(self, youngest: int = 20, oldest: int = 80) -> tuple[str, str, date]:
        while True:
            birth = self._birth(youngest, oldest)
            pid = resident_id(resident_division(birth, self.rng), birth, self.rng.randrange(1000))
            if pid not in self._ids:
                self._ids.add(pid)
                return pid, self._person_name(), birth

    def _person_name(self) -> str:
        r = self.rng
        given = weighted(r, GIVEN) if r.random() < 0.22 else weighted(r, GIVEN) + (
            r.choice(GIVEN_RARE) if r.random() < 0.08 else weighted(r, GIVEN))
        return weighted(r, SURNAMES) + given

    def _individual(self) -> Subject:
        pid, name, birth = self._person()
        return Subject("individual", pid, name, "individual", birth)

    def _organization(self, subject_type: str, category: str) -> Subject:
        group = "9x" if category.startswith("9") else "5x" if category.startswith("5") else "12"
        while True:
            division = weighted(self.rng, CODE_DIVISIONS[group])
            code = uscc(category, division, self._org_body(category))
            if code is not None and code not in self._ids:
                break
        self._ids.add(code)
        return Subject(subject_type, code, self._unique_name(category, division), category)

    def _org_body(self, category: str) -> str:
        r = self.rng
        if (category in ("91", "93") and r.random() < 0.85) or (
                category == "92" and r.random() < 0.6):
            # Codes issued since 2015 carry an "MA" organization code.
            return "MA" + r.choice("45") + "".join(r.choice(ORG_CHARS) for _ in range(5))
        if category == "92":
            return "L" + "".join(r.choice(ORG_CHARS) for _ in range(7))
        if category.startswith("5"):
            return "MJ" + "".join(r.choice(ORG_CHARS) for _ in range(6))
        if category == "12":
            return r.choice("47") + "".join(r.choice(ORG_DIGITS) for _ in range(7))
        return "".join(r.choice(ORG_DIGITS) for _ in range(8))  # an older organization code

    def _unique_name(self, category: str, division: str) -> str:
        for attempt in range(50):
            name = self._org_name(category, division, longer=attempt >= 10)
            if name not in self._names:
                self._names.add(name)
                return name
        # Practically unreachable: fifty draws of a longer name all taken.
        name = f"{name}（{len(self._names)}）"
        self._names.add(name)
        return name

    def _zihao(self, longer: bool = False) -> str:
        n = 3 if longer or self.rng.random() < 0.08 else 2
        return "".join(self.rng.choice(ZIHAO) for _ in range(n))

    def _district(self, division: str) -> str:
        return division if division in DISTRICT_NAMES else weighted(self.rng, HOME_DISTRICTS)

    def _org_name(self, category: str, division: str, longer: bool) -> str:
        r = self.rng
        district = self._district(division)
        area = DISTRICT_NAMES[district]
        town = r.choice(TOWNS[district])
        if category == "91":
            zihao, trade = self._zihao(longer), weighted(r, TRADES)
            pattern = weighted(r, ENTERPRISE_NAME_PATTERNS)
            return [f"珠海{zihao}{trade}有限公司", f"珠海市{zihao}{trade}有限公司",
                    f"珠海横琴{zihao}{trade}有限公司", f"横琴粤澳深度合作区{zihao}{trade}有限公司",
                    f"{zihao}（珠海）{trade}有限公司", f"珠海{zihao}{trade}股份有限公司",
                    f"珠海市{area}{zihao}{trade}有限公司"][pattern]
        if category == "92":
            shop = r.choice(SHOPS)
            owner = (weighted(r, SURNAMES)[:1] + "记") if r.random() < 0.3 else self._zihao(longer)
            return (f"珠海市{area}{town}{owner}{shop}" if r.random() < 0.5
                    else f"珠海市{area}{owner}{shop}")
        if category == "93":
            return f"珠海市{area}{town}{self._zihao(longer)}{r.choice(COOP_PRODUCTS)}专业合作社"
        if category == "51":
            kind = r.random()
            if kind < 0.35:
                return f"珠海市{weighted(r, TRADES)}{r.choice(ASSOCIATION_KINDS)}" if not longer \
                    else f"珠海市{area}{weighted(r, TRADES)}{r.choice(ASSOCIATION_KINDS)}"
            if kind < 0.55:
                home = r.choice(HOMETOWNS)
                return f"珠海市{home}商会" if not longer else f"珠海市{area}{home}商会"
            if kind < 0.65:
                return f"珠海市{r.choice(SOCIETIES)}" if not longer \
                    else f"珠海市{area}{r.choice(SOCIETIES)}"
            zihao = self._zihao() if longer else ""
            return f"珠海市{area}{town}{zihao}{r.choice(ASSOCIATION_GROUPS)}协会"
        if category == "52":
            return f"珠海市{area}{self._zihao(longer)}{r.choice(NON_ENTERPRISE_UNITS)}"
        if category == "53":
            return f"珠海市{self._zihao(longer)}{r.choice(FOUNDATION_THEMES)}基金会"
        # 12: public institutions
        kind = r.random()
        if kind < 0.4:
            return f"珠海市{area}{r.choice(INSTITUTION_CENTRES)}{r.choice(INSTITUTION_KINDS)}" \
                if not longer else f"珠海市{area}{town}{r.choice(INSTITUTION_CENTRES)}中心"
        if kind < 0.75:
            return f"珠海市{area}第{r.randrange(1, 40)}{r.choice(SCHOOLS)}" if not longer \
                else f"珠海市{area}{town}{self._zihao()}{r.choice(SCHOOLS)}"
        if longer:
            return f"珠海市{area}{town}{self._zihao()}社区卫生服务站"
        return f"珠海市{area}{town}{r.choice(TOWN_INSTITUTIONS)}"

    # --- records ---------------------------------------------------------------------------

    def _items_for(self, s: Subject, group: str) -> Choice[str]:
        choice = self._items.get((s.type, group))
        if choice is None:
            weights = ITEM_WEIGHTS.get(group, {})
            # An individual business (92) has an operator, not a legal representative.
            choice = self._items[(s.type, group)] = Choice({
                name: weights.get(name, 0.2) for name, item in self.catalogue.items.items()
                if s.type in item.subject_types and item.commitment is None
                and not (name == "amr.legal_representative" and group == "92")})
        return choice

    def _decision_day(self, earliest: date | None = None) -> date | None:
        """A working day in the five-year window, later years more likely (the archive
        grows): density proportional to 1 + t over the window."""
        start = max(self.window_start, earliest or self.window_start)
        span = (self.as_of - timedelta(days=1) - start).days
        if span < 0:
            return None
        t = (1 + 3 * self.rng.random()) ** 0.5 - 1
        return self._working_day(start + timedelta(days=round(t * span)), start)

    def _working_day(self, day: date, earliest: date) -> date | None:
        """Decisions are made on working days: a weekend day moves to the Friday before, or
        the Monday after where the Friday is too early."""
        if day.weekday() < 5:
            return day
        friday = day - timedelta(days=day.weekday() - 4)
        if friday >= earliest:
            return friday
        monday = day + timedelta(days=7 - day.weekday())
        return monday if monday < self.as_of else None

    def records(self, s: Subject) -> list[Submission]:
        out: list[Submission] = []
        group = "5x" if s.category.startswith("5") else s.category
        items = self._items_for(s, group)
        if s.category in ("91", "93"):
            out += self._record(s, "amr.legal_representative")
        for _ in range(weighted(self.rng, RECORD_COUNTS[group])):
            out += self._record(s, items(self.rng))
        self._tally_listing(out)
        return out

    def _record(self, s: Subject, item_name: str) -> list[Submission]:
        item = self.catalogue.items[item_name]
        earliest = None
        if item.minimum_age is not None and s.birth is not None:
            earliest = add_years(s.birth, item.minimum_age) + timedelta(days=1)
        decided = self._decision_day(earliest)
        if decided is None:
            return []
        if item_name == "tax.a_grade_taxpayer":  # ratings are published each April
            april = self._working_day(date(decided.year, 4, self.rng.randrange(1, 29)),
                                      self.window_start)
            if april is not None and self.window_start <= april < self.as_of:
                decided = april
        dept = item.department
        self._record_seq[dept] += 1
        record_id = f"{dept.upper()}-{decided.year}-{self._record_seq[dept]:08d}"
        district = self._record_district(s)
        data: dict[str, Any] = {
            "record_id": record_id, "revision": 1, "action": "upsert",
            "catalogue_item": item_name, "subject": s.ref(),
            "decided_on": decided.isoformat(),
            "document_no": self._document_no(dept, item_name, decided.year, district),
            "summary": self.rng.choice(SUMMARIES.get(item_name, (item.name,))),
            "district": district, "attributes": self._attributes(s, item_name),
        }
        zone = self._zone(s)
        if zone is not None:
            data["zone"] = zone
        self.tally.records[item_name] += 1
        out = [Submission(dept, data, self._event_id(), decided)]
        withdrawn_on = self._withdrawal(item_name, decided)
        if withdrawn_on is not None:
            self.tally.withdrawals[item_name] += 1
            out.append(Submission(dept, {
                "record_id": record_id, "revision": 2, "action": "withdraw",
                "subject": s.ref()}, self._event_id(), withdrawn_on))
        return out

    def _event_id(self) -> str:
        # A department's own event id (a UUID), drawn from the seeded generator.
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _record_district(self, s: Subject) -> str:
        code = s.id[2:8] if s.type != "individual" else s.id[:6]
        if code in DISTRICT_NAMES:
            return code
        if code == "440421":  # 斗门县's people live in 斗门区 and 金湾区 today
            return self.rng.choice(("440403", "440404"))
        return weighted(self.rng, HOME_DISTRICTS)

    def _zone(self, s: Subject) -> str | None:
        if "横琴" in s.name:
            return "hengqin"
        if s.type == "enterprise" and self.rng.random() < 0.06:
            return self.rng.choice(("gaoxin", "gaolan", "baoshui", "wanshan"))
        return None

    def _document_no(self, dept: str, item: str, year: int, district: str) -> str:
        self._document_seq[(dept, year)] += 1
        n = self._document_seq[(dept, year)]
        match dept, item:
            case "court", _:
                court = COURTS.get(district, "") if self.rng.random() < 0.8 else ""
                return f"（{year}）粤04{court[2:] if court else ''}执{n}号"
            case "tax", "tax.a_grade_taxpayer":
                return f"珠税信〔{year}〕{n}号"
            case "tax", _:
                return f"珠税稽罚〔{year}〕{n}号"
            case "amr", "amr.abnormal_operation":
                return f"珠市监异〔{year}〕{n}号"
            case "amr", "amr.legal_representative":
                return f"珠市监登〔{year}〕{n}号"
            case "amr", _:
                return f"珠市监罚处〔{year}〕{n}号"
        return f"{DOCUMENT_PREFIXES.get(dept, dept)}〔{year}〕{n}号"

    def _attributes(self, s: Subject, item_name: str) -> dict[str, Any]:
        r = self.rng
        if item_name == "amr.legal_representative":
            if self._individuals and r.random() < LEGAL_REP_IN_ARCHIVE:
                person = r.choice(self._individuals)
                pid, name = person.id, person.name
            else:
                pid, name, _ = self._person(22, 75)
            return {"legal_representative": {"id": pid, "name": name}}
        if item_name == "amr.admin_penalty":
            penalty = r.choice(("罚款", "警告", "没收违法所得、罚款"))
            amount = r.choice((500, 2000, 5000, 10000, 30000, 50000, 200000))
            # The class the department sends (samr-order-45); what counts as a small fine is
            # the province's, this synthetic city takes 5,000 yuan.
            penalty_class = ("criticism" if penalty == "警告"
                             else "small_fine" if amount <= 5000 else "other")
            return {"penalty": penalty, "amount_yuan": amount, "penalty_class": penalty_class}
        if item_name == "tax.major_violation":
            return {"amount_yuan": r.randrange(1_000_000, 30_000_000, 1000)}
        if item_name == "hrss.wage_arrears":
            return {"workers": r.randrange(3, 120), "amount_yuan": r.randrange(20_000, 3_000_000,
                                                                                100)}
        return {}

    def _withdrawal(self, item_name: str, decided: date) -> date | None:
        if item_name not in LIFECYCLE:
            return None
        term, after, within = LIFECYCLE[item_name]
        end_of_term = add_years(decided, term)
        last_day = self.as_of - timedelta(days=1)
        if end_of_term <= last_day:
            if self.rng.random() < after:
                return end_of_term
            return None
        if self.rng.random() < within and decided < last_day:
            return decided + timedelta(days=self.rng.randrange(1, (last_day - decided).days + 1))
        return None

    def _tally_listing(self, submissions: Sequence[Submission]) -> None:
        """The lists a subject's records put it on as of the city's day: each record in
        force and still shown (its disclosure window, as ingest computes it, not past), as
        the publisher decides (services/publisher/domain.py, `qualifying_basis`)."""
        in_force: dict[str, dict[str, Any]] = {}
        for sub in submissions:
            if sub.data["action"] == "upsert":
                in_force[sub.data["record_id"]] = sub.data
            else:
                in_force.pop(sub.data["record_id"], None)
        lists = {name for data in in_force.values() if self._shown(data)
                 for name in self.catalogue.lists_fed_by(data["catalogue_item"])}
        self.tally.listed.update(lists)

    def _shown(self, data: dict[str, Any]) -> bool:
        shown = disclosure.window(self.catalogue, data["catalogue_item"],
                                  date.fromisoformat(data["decided_on"]),
                                  data.get("attributes")).public_until
        return shown is not None and self.as_of <= shown

    # --- the stream ------------------------------------------------------------------------

    def stream(self, subjects: int | None = None, submissions: int | None = None,
               block: int = 5000) -> Iterator[Submission]:
        """Submissions in the order departments send them: blocks of `block` subjects, each
        block's submissions by date (a subject's revisions keep their order: a withdrawal is
        dated after its record). Stops after `subjects` subjects or `submissions`
        submissions, whichever comes first."""
        made = sent = 0
        while (subjects is None or made < subjects) and (submissions is None
                                                         or sent < submissions):
            batch: list[Submission] = []
            for _ in range(block if subjects is None else min(block, subjects - made)):
                batch += self.records(self.subject())
                made += 1
            batch.sort(key=lambda sub: sub.sent_on)  # stable: same-day revisions keep order
            for sub in batch:
                self.tally.submissions += 1
                sent += 1
                yield sub
                if submissions is not None and sent >= submissions:
                    return
