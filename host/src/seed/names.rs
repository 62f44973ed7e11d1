//! The vocabulary of the demo world: names, places, cars and the words people write about them.

/// Common surnames, the most frequent first (they are drawn with a bias towards the front).
pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
    "韦", "付", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "闫", "段", "雷", "侯",
    "龙", "史", "陶", "黎", "贺", "顾", "毛", "郝", "龚", "邵", "万", "钱", "严", "武", "戴",
    "欧阳",
];

pub const MALE_GIVEN: &[&str] = &[
    "建国", "志强", "伟", "磊", "军", "勇", "杰", "涛", "明", "超", "强", "鹏", "浩", "宇", "晨",
    "俊杰", "子轩", "浩然", "文博", "海洋", "建华", "国庆", "立新", "永刚", "晓东", "志刚", "鑫",
    "斌", "峰", "辉", "刚", "波", "宏", "亮", "健", "凯", "旭", "博", "昊天", "一鸣", "思远",
    "天佑", "嘉豪", "明轩", "振华", "德胜", "春生", "卫东", "宏伟", "家豪",
];

pub const FEMALE_GIVEN: &[&str] = &[
    "娜", "敏", "静", "丽", "艳", "芳", "秀英", "桂英", "丽娟", "婷", "雪", "慧", "玲", "燕", "霞",
    "红", "梅", "琳", "欣怡", "梓涵", "诗涵", "雨桐", "佳怡", "思琪", "晓燕", "文静", "丹", "莉",
    "颖", "倩", "月", "萍", "洁", "晶", "蕾", "晓丽", "春梅", "海燕", "美玲", "子涵", "淑珍",
    "玉兰", "雅琴", "紫萱", "梦瑶", "可馨", "悦", "璐", "婉清", "静怡",
];

/// A city the demo network has dealers in.
pub struct City {
    pub name: &'static str,
    /// Plate prefixes (province + issuing office) of the city.
    pub plates: &'static [&'static str],
    /// Administrative division codes of the city's districts (the first 6 digits of an ID number).
    pub id_areas: &'static [&'static str],
}

pub const CITIES: &[City] = &[
    City {
        name: "北京",
        plates: &["京A", "京N"],
        id_areas: &["110105", "110108", "110101", "110102"],
    },
    City {
        name: "天津",
        plates: &["津A"],
        id_areas: &["120103", "120101", "120104"],
    },
    City {
        name: "上海",
        plates: &["沪A"],
        id_areas: &["310115", "310104", "310105"],
    },
    City {
        name: "杭州",
        plates: &["浙A"],
        id_areas: &["330106", "330102", "330105"],
    },
    City {
        name: "广州",
        plates: &["粤A"],
        id_areas: &["440106", "440104", "440105"],
    },
    City {
        name: "深圳",
        plates: &["粤B"],
        id_areas: &["440305", "440304", "440306"],
    },
    City {
        name: "成都",
        plates: &["川A"],
        id_areas: &["510107", "510104", "510105"],
    },
    City {
        name: "重庆",
        plates: &["渝A"],
        id_areas: &["500112", "500103", "500105"],
    },
];

/// Division codes of places people move to the big cities from (their ID keeps the birthplace).
pub const HOMETOWN_AREAS: &[&str] = &[
    "130102", "410102", "420102", "430102", "370102", "320102", "340102", "360102", "210102",
    "610102",
];

pub fn city(name: &str) -> &'static City {
    CITIES.iter().find(|c| c.name == name).unwrap_or(&CITIES[0])
}

/// Mobile prefixes of first phone numbers; second numbers use [`SECOND_MOBILE_PREFIXES`], staff
/// [`STAFF_MOBILE_PREFIXES`], so generated numbers of different people never coincide.
pub const FIRST_MOBILE_PREFIXES: &[&str] = &[
    "138", "139", "136", "137", "135", "150", "151", "152", "158", "159", "186", "187", "188",
    "185", "183", "180", "189", "133", "153", "177",
];
pub const SECOND_MOBILE_PREFIXES: &[&str] = &[
    "130", "131", "132", "155", "156", "166", "175", "176", "181", "199",
];
pub const STAFF_MOBILE_PREFIXES: &[&str] = &["134", "157", "182", "184", "198"];

/// A model of the brand, with how its VIN's descriptor section (positions 4 to 8) reads.
pub struct Model {
    pub name: &'static str,
    pub trims: &'static [&'static str],
    pub electric: bool,
    pub descriptor: &'static str,
    /// Typical list price in yuan, for the words of a purchase note.
    pub price_wan: u32,
}

pub const BRAND: &str = "远航";

pub const MODELS: &[Model] = &[
    Model {
        name: "Y5",
        trims: &["舒适版", "豪华版", "运动版"],
        electric: false,
        descriptor: "A1241",
        price_wan: 13,
    },
    Model {
        name: "Y7",
        trims: &["精英版", "豪华版", "旗舰版"],
        electric: false,
        descriptor: "B2341",
        price_wan: 19,
    },
    Model {
        name: "Y9",
        trims: &["尊享版", "旗舰版"],
        electric: false,
        descriptor: "C3342",
        price_wan: 28,
    },
    Model {
        name: "EV6",
        trims: &["标准续航版", "长续航版", "性能版"],
        electric: true,
        descriptor: "E1E41",
        price_wan: 17,
    },
    Model {
        name: "EV9",
        trims: &["长续航版", "四驱旗舰版"],
        electric: true,
        descriptor: "F3E42",
        price_wan: 32,
    },
];

pub const COLORS: &[&str] = &[
    "星空黑",
    "珍珠白",
    "极光银",
    "深海蓝",
    "中国红",
    "钛金灰",
    "薄荷绿",
];

pub const INSURERS: &[&str] = &["中国人保", "平安保险", "太平洋保险"];

/// Tags a dealer puts on customers.
pub const TAGS: &[&str] = &[
    "科技爱好者",
    "价格敏感",
    "有孩家庭",
    "VIP",
    "新能源车主",
    "商务人士",
    "自驾游爱好者",
    "首次购车",
    "有换购意向",
    "车队客户",
    "老客户推荐",
    "周末到店",
];

/// The first-party loyalty plugin's tiers (`customers::ENTRY_TIER` first), so its rules match
/// the demo's customers.
pub const MEMBER_TIERS: &[(&str, u32)] = &[("银卡", 80), ("金卡", 14), ("铂金", 6)];

pub const SOURCE_CHANNELS: &[(&str, u32)] = &[
    ("walk_in", 22),
    ("online_ad", 18),
    ("auto_show", 12),
    ("app", 12),
    ("referral", 12),
    ("hotline", 8),
    ("wechat", 16),
];

/// What each interaction kind's summary may say; `{model}` and `{km}` are filled in.
pub const CALL_NOTES: &[&str] = &[
    "电话回访：客户对上次保养服务满意",
    "致电提醒交强险和商业险即将到期，客户表示会考虑续保",
    "邀约参加{model}新车品鉴会，客户有意向",
    "电话回访：客户反映车机导航偶尔卡顿，已记录",
    "提醒客户首保时间，客户约了下周六到店",
    "客户来电咨询置换补贴政策",
];
pub const VISIT_NOTES: &[&str] = &[
    "到店看车并试驾{model}，对动力和空间满意",
    "到店咨询{model}金融方案，关注首付和月供",
    "带家人到店看车，孩子喜欢{model}的后排空间",
    "到店参加车主沙龙活动",
    "到店洗车并咨询精品加装",
];
pub const MESSAGE_NOTES: &[&str] = &[
    "微信发送保养优惠券",
    "短信通知车辆已完工，可到店取车",
    "微信推送{model}车主自驾游活动报名",
    "短信发送生日祝福和到店礼品券",
    "微信发送满意度调查链接",
];
pub const NOTE_NOTES: &[&str] = &[
    "客户偏好周末到店，联系前先发微信",
    "客户对价格较敏感，重点介绍金融贴息",
    "客户工作繁忙，只接受下午六点后来电",
    "客户有换购意向，预算三十万左右",
    "客户希望安装家用充电桩，已转交安装团队",
];
pub const SERVICE_NOTES: &[&str] = &[
    "{km}公里常规保养：更换机油、机滤",
    "{km}公里保养：更换空气滤芯和空调滤芯",
    "更换前刹车片，里程{km}公里",
    "四轮定位及轮胎换位，里程{km}公里",
    "空调系统检查并补充冷媒",
    "更换雨刮片和蓄电池",
];
pub const EV_SERVICE_NOTES: &[&str] = &[
    "{km}公里电池包健康检查，状态良好",
    "三电系统检测及冷却液更换，里程{km}公里",
    "充电口盖异响处理",
    "车机系统升级至最新版本",
];

/// What tickets are about.
pub struct TicketTopic {
    pub category: &'static str,
    pub subject: &'static str,
    pub description: &'static str,
    pub priority: &'static str,
    /// Only owners of electric cars raise it.
    pub electric_only: bool,
}

const fn topic(
    category: &'static str,
    subject: &'static str,
    description: &'static str,
    priority: &'static str,
    electric_only: bool,
) -> TicketTopic {
    TicketTopic {
        category,
        subject,
        description,
        priority,
        electric_only,
    }
}

pub const TICKET_TOPICS: &[TicketTopic] = &[
    topic(
        "complaint",
        "保养等待时间过长",
        "客户预约了上午十点保养，实际等待超过三小时，要求说明原因。",
        "normal",
        false,
    ),
    topic(
        "complaint",
        "交车时发现漆面划痕",
        "提车当天发现右后车门有明显划痕，要求处理。",
        "high",
        false,
    ),
    topic(
        "complaint",
        "销售承诺的精品未兑现",
        "购车时承诺赠送脚垫和行车记录仪，交车时未提供。",
        "normal",
        false,
    ),
    topic(
        "safety",
        "行驶中刹车异响并有抖动",
        "高速行驶制动时前轮异响，方向盘抖动，客户担心安全。",
        "urgent",
        false,
    ),
    topic(
        "safety",
        "仪表盘电池故障灯亮起",
        "行驶中电池故障灯亮起，续航显示突然下降。",
        "urgent",
        true,
    ),
    topic(
        "repair",
        "空调不制冷",
        "开启空调后出风口只有自然风。",
        "normal",
        false,
    ),
    topic(
        "repair",
        "车窗升降有异响",
        "左前车窗升降时有咔咔声。",
        "low",
        false,
    ),
    topic(
        "repair",
        "车机系统频繁死机",
        "导航和音乐经常卡死，需要重启车辆才能恢复。",
        "normal",
        false,
    ),
    topic(
        "repair",
        "快充桩无法启动充电",
        "在公共快充桩上多次尝试均无法启动充电，慢充正常。",
        "high",
        true,
    ),
    topic(
        "inquiry",
        "咨询延保政策",
        "客户想了解原厂延保的价格和覆盖范围。",
        "low",
        false,
    ),
    topic(
        "inquiry",
        "咨询家用充电桩安装",
        "客户所在小区需要物业同意，询问需要哪些材料。",
        "low",
        true,
    ),
    topic(
        "billing",
        "维修结算金额有疑问",
        "客户认为结算单上的工时费与报价不一致。",
        "normal",
        false,
    ),
];

pub const TICKET_CHANNELS: &[&str] = &["hotline", "app", "wechat", "community"];

/// Teams tickets are routed to: safety issues, VIP customers, complaints, everything else.
pub const TEAM_SAFETY: &str = "技术支持组";
pub const TEAM_SERVICE: &str = "售后服务部";
pub const TEAM_CARE: &str = "客户关怀中心";
pub const TEAM_VIP: &str = "VIP专属团队";
